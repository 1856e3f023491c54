"""Bad input gets the right 4xx in the OpenAI envelope, and the server keeps serving."""
from __future__ import annotations

import httpx
import openai
import pytest

from tests.support.servers import Server


@pytest.fixture
def http(server: Server) -> httpx.Client:
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"},
                      timeout=30) as client:
        yield client


def _error(response: httpx.Response) -> dict:
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    return error


def test_malformed_json_is_a_400(http: httpx.Client) -> None:
    response = http.post("/chat/completions", content=b'{"model": "remote-chat", "messages": [',
                         headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert _error(response)["code"] == "invalid_json"


def test_unknown_model_is_a_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as error:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert error.value.body["code"] == "model_not_found"
    assert error.value.body["param"] == "model"


@pytest.mark.parametrize("body, param", [
    ({"model": "remote-chat", "messages": "hello"}, "messages"),
    ({"model": "remote-chat", "messages": []}, "messages"),
    ({"model": "remote-chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": "many"}, "max_tokens"),
    ({"model": "remote-chat", "messages": [{"role": "user", "content": "x"}], "temperature": 7}, "temperature"),
    ({"model": "remote-chat", "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
])
def test_wrong_types_are_a_422_naming_the_field(http: httpx.Client, body: dict, param: str) -> None:
    response = http.post("/chat/completions", json=body)
    assert response.status_code == 422
    assert _error(response)["param"] == param


def test_oversized_body_is_a_413(http: httpx.Client) -> None:
    big = {"model": "remote-chat", "messages": [{"role": "user", "content": "x" * 100_000}]}
    response = http.post("/chat/completions", json=big)
    assert response.status_code == 413
    assert _error(response)["code"] == "request_too_large"


def test_oversized_chunked_body_is_a_413(http: httpx.Client) -> None:
    def chunks():
        yield b'{"model": "remote-chat", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}]}'

    response = http.post("/chat/completions", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_max_tokens_over_the_limit_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model="remote-chat", messages=[{"role": "user", "content": "x"}],
                                       max_tokens=5000)
    assert error.value.body["param"] == "max_tokens"
    assert error.value.body["code"] == "max_tokens_too_large"


def test_unknown_route_is_a_404_envelope(http: httpx.Client) -> None:
    response = http.get("/nowhere")
    assert response.status_code == 404
    assert _error(response)["type"] == "invalid_request_error"


def test_the_server_keeps_serving_after_bad_input(http: httpx.Client, client: openai.OpenAI) -> None:
    for _ in range(3):
        http.post("/chat/completions", content=b"\xff\xfe garbage", headers={"content-type": "application/json"})
    assert client.chat.completions.create(model="remote-chat", messages=[{"role": "user", "content": "x"}]).choices
