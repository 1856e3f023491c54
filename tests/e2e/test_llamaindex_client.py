"""LlamaIndex against a running server with the default catalogue, as the README's recipe writes it: ``OpenAILike``
for a chat completion and a streamed one, ``OpenAILikeEmbedding`` for queries and, through the
``multilingual-e5-small-passage`` alias, passages. LlamaIndex's OpenAI integration requires openai<3, which the
project's own environment cannot hold: the recipe runs in ``.venv-llamaindex``, which ``make install-test`` makes,
with every connection outside the local server refused (no tokenizer or NLTK data downloaded behind it)."""
from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import numpy as np
import openai
import pytest

from tests.support.servers import ROOT, Server, start_server, stop

PYTHON = ROOT / ".venv-llamaindex" / "bin" / "python"
QUERY = "Quand ouvre la mairie le samedi ?"
PASSAGES = ["La mairie ouvre le samedi matin de 9 h à 12 h.", "Le cassoulet se cuit longuement au four."]

RECIPE = r'''
import json
import sys

refused = []


def local_only(event, args):
    """Any connection, or name lookup, outside the local server is refused and reported."""
    if event == "socket.connect" and isinstance(args[1], tuple) and args[1][0] not in ("127.0.0.1", "::1"):
        refused.append(repr(args[1]))
        raise ConnectionRefusedError(f"outside the local server: {args[1]!r}")
    if event == "socket.getaddrinfo" and args[0] not in ("127.0.0.1", "::1", "localhost"):
        refused.append(repr(args[0]))
        raise ConnectionRefusedError(f"outside the local server: {args[0]!r}")


sys.addaudithook(local_only)

from llama_index.embeddings.openai_like import OpenAILikeEmbedding  # noqa: E402
from llama_index.llms.openai_like import OpenAILike  # noqa: E402

base_url, api_key, query, *passages = sys.argv[1:]
llm = OpenAILike(model="smollm2-135m", api_base=base_url, api_key=api_key, is_chat_model=True, max_tokens=24,
                 max_retries=0, timeout=120)
answer = llm.complete("Bonjour, qui es-tu ?").text
streamed = [chunk.delta for chunk in llm.stream_complete("Donne un conseil pour bien dormir.")]

queries = OpenAILikeEmbedding(model_name="multilingual-e5-small", api_base=base_url, api_key=api_key,
                              max_retries=0)
documents = OpenAILikeEmbedding(model_name="multilingual-e5-small-passage", api_base=base_url, api_key=api_key,
                                max_retries=0)
print(json.dumps({"answer": answer, "streamed": streamed, "query": queries.get_query_embedding(query),
                  "passages": documents.get_text_embedding_batch(passages), "refused": refused}))
'''


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("default-catalogue"))  # no catalogue file: the default one
    yield server
    stop(server.process)


def test_llamaindex_chat_and_embeddings(default_server: Server) -> None:
    assert PYTHON.exists(), f"{PYTHON.parent.parent} is missing: run `make install-test`, which makes it"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(default_server.data_dir)}  # none of the user's caches
    run = subprocess.run([str(PYTHON), "-c", RECIPE, default_server.base_url, default_server.admin_key, QUERY,
                          *PASSAGES], check=False, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(run.stdout)
    assert result["refused"] == []

    assert result["answer"].strip()
    assert len(result["streamed"]) > 1 and "".join(result["streamed"]).strip()  # several deltas, not one block

    query, passages = np.array(result["query"]), np.array(result["passages"])
    assert query.shape == (384,) and passages.shape == (2, 384)
    assert query @ passages[0] > query @ passages[1]  # e5's vectors are normalised: the related passage is closer

    sdk = openai.OpenAI(base_url=default_server.base_url, api_key=default_server.admin_key, max_retries=0,
                        timeout=120)
    expected = sdk.embeddings.create(model="multilingual-e5-small", input=PASSAGES,
                                     extra_body={"input_type": "passage"})
    assert np.allclose(passages, [item.embedding for item in expected.data], atol=1e-6)  # the alias's prefix
    expected = sdk.embeddings.create(model="multilingual-e5-small", input=[QUERY])
    assert np.allclose(query, expected.data[0].embedding, atol=1e-6)
