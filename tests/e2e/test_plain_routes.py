"""The inference routes' hot path (a plain ASGI handler) answers exactly as their declared FastAPI routes do.

A query string sends a call to the declared route (the plain handler serves only calls without one, and the
routes take no query parameter), so each call is made both ways against the same running server.
"""
from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.support.servers import Server

_CHAT = {"model": "remote-chat", "messages": [{"role": "user", "content": "Bonjour"}]}
_VARYING = {"id", "created"}  # made afresh by the backend for each answer
_SAME_HEADERS = ("content-type", "cache-control", "x-accel-buffering", "www-authenticate", "retry-after")

CASES = {
    "chat": ("/chat/completions", _CHAT),
    "chat with unknown fields": ("/chat/completions", {**_CHAT, "top_k": 20, "search": False}),
    "completion": ("/completions", {"model": "remote-chat", "prompt": "Bonjour", "max_tokens": 5}),
    "embeddings": ("/embeddings", {"model": "remote-embed", "input": ["un", "deux"]}),
    "unknown model": ("/chat/completions", {**_CHAT, "model": "nope"}),
    "model of another type": ("/embeddings", {"model": "remote-chat", "input": "x"}),
    "max_tokens over the limit": ("/chat/completions", {**_CHAT, "max_tokens": 10**9}),
    "wrong type": ("/chat/completions", {**_CHAT, "temperature": "hot"}),
    "missing field": ("/embeddings", {"model": "remote-embed"}),
    "NUL character": ("/chat/completions", {**_CHAT, "messages": [{"role": "user", "content": "a\x00b"}]}),
    "integer beyond 64 bits": ("/chat/completions", {**_CHAT, "seed": 2**70}),
    "not an object": ("/chat/completions", [1, 2]),
}


def _both(server: Server, path: str, key: str | None, **kwargs: object) -> tuple[httpx.Response, httpx.Response]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as http:
        return http.post(path, **kwargs), http.post(path + "?declared=1", **kwargs)  # type: ignore[arg-type]


def _same(plain: httpx.Response, declared: httpx.Response) -> None:
    assert plain.status_code == declared.status_code
    assert {h: plain.headers.get(h) for h in _SAME_HEADERS} == {h: declared.headers.get(h) for h in _SAME_HEADERS}
    assert plain.headers["x-request-id"] and plain.headers["x-request-id"] != declared.headers["x-request-id"]
    if plain.headers["content-type"].startswith("application/json"):
        body, other = plain.json(), declared.json()
        if isinstance(body, dict):
            body, other = ({k: v for k, v in b.items() if k not in _VARYING} for b in (body, other))
        assert body == other


@pytest.mark.parametrize("case", list(CASES))
def test_calls_get_the_same_answer_both_ways(server: Server, case: str) -> None:
    path, body = CASES[case]
    _same(*_both(server, path, server.admin_key, json=body))


@pytest.mark.parametrize("key", [None, "sk-not-a-key", "sk-socle-abcdefgh.0123456789"])
def test_a_missing_or_wrong_key_gets_the_same_401(server: Server, key: str | None) -> None:
    plain, declared = _both(server, "/chat/completions", key, json=_CHAT)
    assert plain.status_code == 401
    _same(plain, declared)


@pytest.mark.parametrize("content", [b"", b'{"model": "remote-chat", "messages": [', b"\xff\xfe{}"])
def test_unreadable_bodies_get_the_same_error(server: Server, content: bytes) -> None:
    _same(*_both(server, "/chat/completions", server.admin_key, content=content,
                 headers={"content-type": "application/json"}))


def test_a_body_over_the_size_limit_gets_the_same_413(server: Server) -> None:
    """The plain handler sits above the size limit: it hands such bodies on, declared or found while read."""
    big = json.dumps({**_CHAT, "messages": [{"role": "user", "content": "x" * 70_000}]}).encode()

    def chunked() -> Iterator[bytes]:  # no Content-Length: found too large while read
        yield from (big[i:i + 8192] for i in range(0, len(big), 8192))

    headers = {"content-type": "application/json", "Authorization": f"Bearer {server.admin_key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as http:
        for answers in ([http.post(path, content=big) for path in ("/chat/completions", "/chat/completions?a=1")],
                        [http.post(path, content=chunked()) for path in ("/chat/completions", "/chat/completions?a=1")]):
            assert answers[0].status_code == 413 and answers[0].json()["error"]["code"] == "request_too_large"
            _same(*answers)


def test_a_body_sent_as_another_type_gets_the_same_answer(server: Server) -> None:
    _same(*_both(server, "/chat/completions", server.admin_key, content=b'{"model": "remote-chat"}',
                 headers={"content-type": "text/plain"}))


def test_streams_are_the_same_both_ways(server: Server) -> None:
    body = {**_CHAT, "stream": True, "stream_options": {"include_usage": True}}
    answers = []
    for suffix in ("", "?declared=1"):
        with httpx.stream("POST", server.base_url + "/chat/completions" + suffix, json=body, timeout=30,
                          headers={"Authorization": f"Bearer {server.admin_key}"}) as response:
            events = [line for line in response.iter_lines() if line.startswith("data:")]
            answers.append((response.status_code, response.headers["content-type"],
                            response.headers["cache-control"], [_without_ids(event) for event in events]))
    assert answers[0] == answers[1]
    assert answers[0][3][-1] == "data: [DONE]" and len(answers[0][3]) > 2


def _without_ids(event: str) -> str:
    if event == "data: [DONE]":
        return event
    chunk = json.loads(event.removeprefix("data: "))
    return "data: " + json.dumps({k: v for k, v in chunk.items() if k not in _VARYING}, sort_keys=True)
