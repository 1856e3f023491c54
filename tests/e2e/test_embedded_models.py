"""The embedded defaults (SmolLM2 on llama.cpp, multilingual-e5-small) through the official openai SDK."""
from __future__ import annotations

import base64
import json

import numpy as np
import openai
import pytest

from tests.support.servers import Server

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
