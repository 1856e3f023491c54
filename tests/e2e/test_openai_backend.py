"""Calls routed to an OpenAI-compatible backend (a mock peer started by the tests)."""
from __future__ import annotations

import json
import secrets
import time

import httpx
import openai
import pytest

from tests.support.mock_backend import CHUNKS
from tests.support.servers import Server


def _stats(mock_backend: str) -> dict[str, int]:
    return httpx.get(mock_backend + "/stats").json()


def test_chat_is_passed_through_with_the_public_model_name(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="remote-chat", messages=[{"role": "user", "content": "Bonjour"}])
    assert reply.model == "remote-chat"
    assert reply.choices[0].message.content == "Bonjour, ceci est une réponse simulée."
    assert reply.usage.total_tokens == 18


def test_tools_and_unknown_fields_reach_the_backend(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "horaires_mairie", "description": "Opening hours",
                                               "parameters": {"type": "object", "properties": {}}}}]
    reply = client.chat.completions.create(model="remote-chat", messages=[{"role": "user", "content": "x"}],
                                           tools=tools, tool_choice="auto", extra_body={"top_k": 20})
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "horaires_mairie"
    seen = json.loads(call.function.arguments)["seen"]
    assert {"tools", "tool_choice", "top_k", "messages", "model"} <= set(seen)


def test_no_request_field_chooses_the_upstream(client: openai.OpenAI) -> None:
    hijack = {"api_base": "http://127.0.0.1:1/v1", "base_url": "http://127.0.0.1:1/v1", "api_key": "stolen",
              "url": "http://127.0.0.1:1/v1", "extra_headers": {"authorization": "Bearer stolen"}}
    reply = client.chat.completions.create(model="remote-chat", messages=[{"role": "user", "content": "x"}],
                                           extra_body=hijack)
    assert reply.choices[0].message.content == "Bonjour, ceci est une réponse simulée."


def test_stream_chunks_arrive_in_order_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="remote-chat", messages=[{"role": "user", "content": "x"}],
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(f"tok{i} " for i in range(CHUNKS))
    assert chunks[-1].usage.completion_tokens == CHUNKS


def test_completions_and_embeddings_are_passed_through(client: openai.OpenAI) -> None:
    assert client.completions.create(model="remote-chat", prompt="Il était").choices[0].text == " suite."
    vectors = client.embeddings.create(model="remote-embed", input=["a", "bbb"]).data
    assert [v.embedding for v in vectors] == [[0.5, 0.25, 1.0], [0.5, 0.25, 3.0]]


def test_backend_failure_is_a_502(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as error:
        client.chat.completions.create(model="remote-fail", messages=[{"role": "user", "content": "x"}])
    assert error.value.status_code == 502
    assert error.value.body["code"] == "backend_error"


def test_unreachable_backend_is_a_502(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as error:
        client.chat.completions.create(model="remote-down", messages=[{"role": "user", "content": "x"}])
    assert error.value.status_code == 502
    assert error.value.body["code"] == "backend_unreachable"


def test_backend_rejection_keeps_its_status(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model="remote-reject", messages=[{"role": "user", "content": "x"}])
    assert "context too long" in error.value.message


def test_backend_timeout_is_a_504(client: openai.OpenAI) -> None:
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as error:
        client.chat.completions.create(model="remote-slow", messages=[{"role": "user", "content": "x"}])
    assert error.value.status_code == 504
    assert time.monotonic() - started < 10


def test_stream_broken_by_the_backend_ends_with_an_error_event(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="remote-midfail", messages=[{"role": "user", "content": "x"}],
                                            stream=True)
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert received == ["tok0 ", "tok1 "]


def test_stream_error_event_is_well_formed(server: Server) -> None:
    body = {"model": "remote-midfail", "messages": [{"role": "user", "content": "x"}], "stream": True}
    with httpx.stream("POST", server.base_url + "/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {server.admin_key}"}) as response:
        events = [line for line in response.iter_lines() if line.startswith("data:")]
    assert response.status_code == 200
    assert '"error"' in events[-1] and "[DONE]" not in events[-1]


def test_client_disconnect_cancels_the_upstream_stream(server: Server, mock_backend: str) -> None:
    before = _stats(mock_backend)["streams_aborted"]
    body = {"model": "remote-endless", "messages": [{"role": "user", "content": "x"}], "stream": True}
    with httpx.stream("POST", server.base_url + "/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {server.admin_key}"}) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data:"))
    deadline = time.monotonic() + 10
    while _stats(mock_backend)["streams_aborted"] == before and time.monotonic() < deadline:
        time.sleep(0.1)
    stats = _stats(mock_backend)
    assert stats["streams_aborted"] == before + 1
    assert stats["streams_open"] == 0


def _stream_events(server: Server, model: str) -> list[str]:
    body = {"model": model, "messages": [{"role": "user", "content": "x"}], "stream": True}
    with httpx.stream("POST", server.base_url + "/chat/completions", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {server.admin_key}"}) as response:
        assert response.status_code == 200
        return [line[5:].strip() for line in response.iter_lines() if line.startswith("data:")]


def test_callers_know_a_backend_by_its_label_never_by_its_address(server: Server, mock_backend: str) -> None:
    admin = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"})
    user = admin.post("/users", json={"email": f"label-{secrets.token_hex(4)}@interieur.gouv.fr"}).json()
    key = admin.post("/keys", json={"user_id": user["id"]}).json()["key"]
    client = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)
    messages = [{"role": "user", "content": "x"}]
    seen = {}
    for model in ("remote-fail", "remote-named", "remote-down"):
        with pytest.raises(openai.InternalServerError) as error:
            client.chat.completions.create(model=model, messages=messages)
        seen[model] = error.value.message
    assert "remote-fail#0" in seen["remote-fail"] and "gpu-paris-1" in seen["remote-named"]
    assert "remote-down#0" in seen["remote-down"]
    for message in seen.values():
        assert "127.0.0.1" not in message and "http" not in message
        assert "boom" not in message  # what the backend answered is for operators, not callers
    deadline = time.monotonic() + 15
    while True:  # usage rows are written in batches
        rows = httpx.get(server.base_url + "/usage", headers={"Authorization": f"Bearer {key}"}).json()["data"]
        if len(rows) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sorted(row["backend"] for row in rows) == ["gpu-paris-1", "remote-down#0", "remote-fail#0"]
    assert "127.0.0.1" not in json.dumps(rows)
    metrics = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {server.admin_key}"}).text
    assert "127.0.0.1" not in httpx.get(server.url + "/ready").text and "127.0.0.1" not in metrics
    log = (server.data_dir / "server.log").read_text(errors="replace")
    assert "boom" in log and mock_backend.removeprefix("http://") in log  # operators learn what failed, where


def test_a_stream_cut_before_its_end_is_an_error_not_an_answer(client: openai.OpenAI, server: Server) -> None:
    stream = client.chat.completions.create(model="remote-truncated", stream=True,
                                            messages=[{"role": "user", "content": "x"}])
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert received == ["tok0 ", "tok1 "]
    events = _stream_events(server, "remote-truncated")
    assert json.loads(events[-1])["error"]["code"] == "stream_truncated" and "[DONE]" not in events


def test_events_spread_over_several_data_lines_are_accepted(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="remote-multiline", stream=True,
                                            messages=[{"role": "user", "content": "x"}])
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "ligne0 ligne1 ligne2 "
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_an_oversized_event_ends_the_stream_with_a_clear_error(server: Server) -> None:
    events = _stream_events(server, "remote-huge")
    assert json.loads(events[0])["choices"][0]["delta"]["content"] == "tok0 "
    error = json.loads(events[-1])["error"]
    assert error["code"] == "stream_event_too_large" and "512 KiB" in error["message"]
    assert "[DONE]" not in events and not any("HUGE" in event for event in events)
    assert "HUGE" not in (server.data_dir / "server.log").read_text(errors="replace")
