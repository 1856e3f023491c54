"""AI Act transparency through the API: every model says what it is (its card, in ``/v1/models``), and every
answer names the model that generated it, streamed or not."""
from __future__ import annotations

import httpx
import openai

from tests.support.servers import Server


def test_models_carry_their_card(server: Server) -> None:
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"}) as api:
        models = {m["id"]: m for m in api.get("/models").json()["data"]}
        one = api.get("/models/smollm2-135m").json()
    card = models["smollm2-135m"]["card"]
    assert card["license"] == "Apache-2.0" and "HuggingFaceTB" in card["provider"] and card["languages"] == ["en"]
    assert card["intended_use"] and card["limitations"] and card["runs_on"]
    assert one["card"] == card
    assert models["multilingual-e5-small"]["card"]["license"] == "MIT"
    assert models["remote-chat"]["card"] is None  # no card in the catalogue: none is made up


def test_answers_name_the_model_streamed_or_not(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Bonjour"}]
    answer = client.chat.completions.create(model="remote-chat", messages=messages)  # the backend's is mock-chat
    assert answer.model == "remote-chat"
    chunks = list(client.chat.completions.create(model="remote-chat", messages=messages, stream=True))
    assert chunks and {chunk.model for chunk in chunks} == {"remote-chat"}
