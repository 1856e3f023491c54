"""The embedded defaults (SmolLM2 on llama.cpp, multilingual-e5-small) through the official openai SDK."""
from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from tests.support.gguf_files import FORBIDDEN, LOOPING, with_chat_template
from tests.support.servers import SOCLE, Server, start_server, stop

CHAT = "smollm2-135m"
EMBED = "multilingual-e5-small"


def test_models_are_listed_and_described(client: openai.OpenAI) -> None:
    ids = {model.id for model in client.models.list()}
    assert {CHAT, EMBED, "remote-chat"} <= ids
    model = client.models.retrieve(EMBED)
    assert model.id == EMBED and model.owned_by == "socle"


def test_chat_answers_with_real_tokens_and_usage(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "Say hello."}],
                                           max_tokens=24, temperature=0)
    assert reply.model == CHAT
    assert reply.choices[0].message.content.strip()
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 5
    assert 0 < reply.usage.completion_tokens <= 24
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_streamed_chat_arrives_in_pieces_with_exact_usage(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Write a long story about a lighthouse."}]
    whole = client.chat.completions.create(model=CHAT, messages=messages, max_tokens=16, temperature=0)
    stream = client.chat.completions.create(model=CHAT, messages=messages, max_tokens=16, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 3 and "".join(pieces).strip()
    assert all(c.model == CHAT for c in chunks)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    usage = chunks[-1].usage
    assert usage is not None and not chunks[-1].choices
    assert usage.prompt_tokens == whole.usage.prompt_tokens
    assert usage.completion_tokens == 16 == whole.usage.completion_tokens


def test_completion(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=CHAT, prompt="The capital of France is", max_tokens=8, temperature=0)
    assert reply.choices[0].text.strip()
    assert reply.usage.completion_tokens > 0


def test_json_schema_output_parses_and_validates(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
              "required": ["city", "population"], "additionalProperties": False}
    reply = client.chat.completions.create(
        model=CHAT, max_tokens=64, temperature=0,
        messages=[{"role": "user", "content": "Give a city and its population as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": True}})
    data = json.loads(reply.choices[0].message.content)
    assert set(data) == {"city", "population"}
    assert isinstance(data["city"], str) and isinstance(data["population"], int)


def test_embeddings_have_the_documented_size_and_meaning(client: openai.OpenAI) -> None:
    texts = ["Comment renouveler mon passeport ?", "Renouvellement du passeport : pièces à fournir.",
             "Comment renouveler mon passeport ?", "La recette de la tarte aux pommes."]
    result = client.embeddings.create(model=EMBED, input=texts, encoding_format="float")
    vectors = np.array([item.embedding for item in result.data])
    assert vectors.shape == (4, 384)
    assert result.usage.prompt_tokens > 0
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[3]


def test_embeddings_in_base64_and_by_alias(server: Server) -> None:
    raw = openai.OpenAI(base_url=server.base_url, api_key=server.admin_key, max_retries=0)
    as_floats = raw.embeddings.create(model="e5-small", input="bonjour", encoding_format="float").data[0].embedding
    # The SDK decodes base64 itself: ask through the raw response to see the wire format.
    response = raw.embeddings.with_raw_response.create(model=EMBED, input="bonjour", encoding_format="base64")
    encoded = json.loads(response.text)["data"][0]["embedding"]
    decoded = np.frombuffer(base64.b64decode(encoded), dtype="<f4")
    np.testing.assert_allclose(decoded, np.array(as_floats, dtype=np.float32))


def test_query_and_passage_prefixes_differ(client: openai.OpenAI) -> None:
    query = client.embeddings.create(model=EMBED, input="passeport", extra_body={"input_type": "query"})
    passage = client.embeddings.create(model=EMBED, input="passeport", extra_body={"input_type": "passage"})
    assert query.data[0].embedding != passage.data[0].embedding


def test_a_chat_model_does_not_embed(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.embeddings.create(model=CHAT, input="x")
    assert error.value.body["code"] == "model_not_supported"


def test_text_content_parts_are_read_and_images_refused(client: openai.OpenAI) -> None:
    parts = [{"type": "text", "text": "Say "}, {"type": "text", "text": "hello."}]
    reply = client.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": parts}], max_tokens=8)
    assert reply.choices[0].message.content
    image = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": image}], max_tokens=8)


def test_a_prompt_longer_than_the_context_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=CHAT, prompt="mot " * 6000, max_tokens=1)


@pytest.mark.parametrize("token", ["49152", "2147483648", "-1", "x"])
def test_a_logit_bias_outside_the_vocabulary_is_a_400(client: openai.OpenAI, token: str) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.completions.create(model=CHAT, prompt="1, 2,", max_tokens=1, logit_bias={token: 5})
    assert error.value.body["param"] == "logit_bias"
    assert client.completions.create(model=CHAT, prompt="1, 2,", max_tokens=1, logit_bias={"0": -100}).choices


# ---- several embedded models, some with a hostile chat template --------------------------------------

SEVERAL = """
models:
  - {{id: smollm2-a, type: chat, backends: [{{type: llamacpp, n_ctx: 512}}]}}
  - {{id: smollm2-b, type: chat, backends: [{{type: llamacpp, n_ctx: 512}}]}}
  - {{id: looping-template, type: chat, backends: [{{type: llamacpp, path: "{looping}", n_ctx: 512, template_timeout_s: 2}}]}}
  - {{id: forbidden-template, type: chat, backends: [{{type: llamacpp, path: "{forbidden}", n_ctx: 512}}]}}
"""


@pytest.fixture(scope="module")
def several(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with four llama.cpp models, logging at info (access lines on stdout, the rest on stderr)."""
    models = tmp_path_factory.mktemp("hostile-models")
    config = models / "models.yaml"
    config.write_text(SEVERAL.format(looping=with_chat_template(models / "looping.gguf", LOOPING),
                                     forbidden=with_chat_template(models / "forbidden.gguf", FORBIDDEN)))
    server = start_server(tmp_path_factory.mktemp("several-server"), config=config,
                          extra_env={"SOCLE_LOG_LEVEL": "info"})
    yield server
    stop(server.process)


def _chat(server: Server, model: str) -> httpx.Response:
    return httpx.post(server.base_url + "/chat/completions", timeout=60,
                      headers={"Authorization": f"Bearer {server.admin_key}"},
                      json={"model": model, "messages": [{"role": "user", "content": "Bonjour"}], "max_tokens": 2})


def test_logs_survive_several_embedded_models(several: Server) -> None:
    assert _chat(several, "smollm2-b").status_code == 200
    log = (several.data_dir / "server.log").read_text(errors="replace")
    assert "Application startup complete" in log  # stderr, once every model has loaded
    assert '"POST /v1/chat/completions HTTP/1.1" 200' in log  # stdout, after start-up


def test_a_looping_chat_template_is_a_clear_error_and_the_server_serves_on(several: Server) -> None:
    client = openai.OpenAI(base_url=several.base_url, api_key=several.admin_key, max_retries=0, timeout=60)
    with pytest.raises(openai.APIStatusError) as error:
        client.chat.completions.create(model="looping-template", messages=[{"role": "user", "content": "x"}])
    assert error.value.status_code == 502
    assert error.value.body["code"] == "chat_template_failed" and "chat template" in error.value.message
    assert client.completions.create(model="looping-template", prompt="Hi", max_tokens=2).choices  # not hung
    assert _chat(several, "smollm2-a").status_code == 200


def test_a_chat_template_the_sandbox_blocks_is_a_clear_error(several: Server) -> None:
    response = _chat(several, "forbidden-template")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "chat_template_failed"
    assert "sandbox" in response.json()["error"]["message"]


def test_model_files_are_recorded_and_a_changed_one_is_refused(several: Server, tmp_path: Path) -> None:
    manifest = json.loads((several.data_dir / "models.manifest.json").read_text())["files"]
    assert len(manifest) == 3 and all(len(entry["sha256"]) == 64 for entry in manifest.values())
    assert several.cli("models", "--verify").returncode == 0

    model = Path(shutil.copy(next(path for path in manifest if path.endswith("forbidden.gguf")), tmp_path / "m.gguf"))
    config = tmp_path / "models.yaml"
    config.write_text(f"models: [{{id: m, type: chat, backends: [{{type: llamacpp, path: '{model}', n_ctx: 512}}]}}]")
    data = tmp_path / "data"
    stop(start_server(data, config=config).process)  # the first load records the file
    with model.open("r+b") as handle:  # one byte of the weights, as a tampered or corrupted copy would differ
        handle.seek(model.stat().st_size - 4096)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(RuntimeError) as refused:
        start_server(data, config=config)
    assert f"The model file {model} has changed since it was recorded" in str(refused.value)
    env = {**several.env, "SOCLE_DATA_DIR": str(data), "SOCLE_CONFIG": str(config), "COLUMNS": "300"}
    verify = subprocess.run([str(SOCLE), "models", "--verify"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert verify.returncode == 1 and "changed" in verify.stdout
    record = subprocess.run([str(SOCLE), "models", "--record"], env=env, capture_output=True, timeout=120)
    assert record.returncode == 0  # an administrator accepts the new file
    stop(start_server(data, config=config).process)
