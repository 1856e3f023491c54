"""An OpenAI-compatible backend served from the test's own event loop, scripted call by call.

The platform's real adapter (``OpenAICompatibleBackend``) reaches it over loopback HTTP like any remote
server, so its pooling, timeouts, SSE parsing and error mapping all run; nothing is replaced in the code
under test, and no process is started. A test queues what the next calls get (``script``); once the queue
is empty every call gets ``default``. Everything the backend received is kept in ``received``.

    async with FakeBackend() as fake:
        fake.script(Fail(500), Answer("Bonjour"))   # the first call fails, the second is answered
        ... ModelConfig(backends=[{"type": "openai", "url": fake.url}]) ...
        assert [call.endpoint for call in fake.received] == ["chat/completions"] * 2

Replies: ``Answer`` (optionally held until a test releases it, or after a delay), ``Fail`` (any HTTP status,
429 and 5xx included), ``Hang`` (never answers: the caller's timeout fires), ``Cut`` (drops the connection
after some stream chunks), ``Truncate`` (``[DONE]`` before the answer ended) and ``Stall`` (a stream that
stops sending and waits: what the caller does then is seen in ``Received.outcome``).
"""
from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

import orjson
from aiohttp import web

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Answer:
    """A normal answer: ``text``'s words are the tokens of every choice, ``prompt_tokens`` its usage."""

    text: str = "Bonjour, voici la réponse demandée."
    prompt_tokens: int = 11
    delay_s: float = 0.0  # before the first byte: a slow backend that still answers in time
    release: asyncio.Event | None = None  # held (in flight) until the test sets it


@dataclass(frozen=True, slots=True)
class Fail:
    """An HTTP error with an OpenAI error envelope (500, 503, 429, 400...)."""

    status: int = 500
    message: str = "panne simulée du serveur d'inférence"


@dataclass(frozen=True, slots=True)
class Hang:
    """Accepts the call and never answers, until the backend closes: only the caller's timeout ends it."""


@dataclass(frozen=True, slots=True)
class Cut:
    """Streams ``after`` chunks of an answer, then drops the connection (a backend dying mid-answer).
    A call that is not a stream is dropped before any byte."""

    after: int = 2
    text: str = "une réponse qui ne finira jamais"


@dataclass(frozen=True, slots=True)
class Truncate:
    """Streams ``after`` chunks, then ``[DONE]`` although no choice ended: an answer cut short. A call that is
    not a stream gets the first half of its JSON answer."""

    after: int = 2
    text: str = "une réponse coupée avant sa fin"


@dataclass(frozen=True, slots=True)
class Stall:
    """Streams ``after`` chunks, then sends nothing more until the caller goes away (or the backend closes)."""

    after: int = 2
    text: str = "une réponse qui attend son lecteur"


Reply = Answer | Fail | Hang | Cut | Truncate | Stall
Outcome = Literal["open", "finished", "abandoned"]


@dataclass(slots=True)
class Received:
    """One call as the backend saw it, and how it ended for the backend."""

    endpoint: str  # "chat/completions", "completions", "embeddings"
    body: Json
    headers: dict[str, str]
    reply: Reply
    outcome: Outcome = "open"  # "abandoned": the caller closed the connection before the reply was written

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))


@dataclass
class FakeBackend:
    """One OpenAI-compatible server on 127.0.0.1 (a free port), for the duration of an ``async with``."""

    default: Reply = field(default_factory=Answer)
    healthy: bool = True  # what GET /v1/models says: the platform's active health checks read it
    received: list[Received] = field(default_factory=list, init=False)
    url: str = field(default="", init=False)  # the base URL, with /v1, once started
    _script: deque[Reply] = field(default_factory=deque, init=False)
    _closing: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition, init=False)
    _runner: web.AppRunner | None = field(default=None, init=False)

    def script(self, *replies: Reply) -> FakeBackend:
        """What the next calls get, in order (after those already queued)."""
        self._script.extend(replies)
        return self

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Until ``condition`` holds, checked whenever a call arrives or ends (a test acting while calls are in
        flight); given up after 10 s, so that a behaviour that never comes fails the test instead of hanging it."""
        async with asyncio.timeout(10), self._changed:
            await self._changed.wait_for(condition)

    async def wait_for_calls(self, count: int) -> None:
        await self.wait_until(lambda: len(self.received) >= count)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        for endpoint in ("chat/completions", "completions", "embeddings"):
            app.router.add_post(f"/v1/{endpoint}", self._handler(endpoint))
        # handler_cancellation: a caller that goes away cancels its handler, as a real server stops the work.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        self._closing.set()  # held and hanging calls end
        if self._runner is not None:
            await self._runner.cleanup()

    async def _models(self, request: web.Request) -> web.Response:
        if not self.healthy:
            return _error(503, "indisponible")
        return web.json_response({"object": "list", "data": [{"id": "fake", "object": "model", "owned_by": "test"}]})

    def _handler(self, endpoint: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            body = orjson.loads(await request.read())
            reply = self._script.popleft() if self._script else self.default
            call = Received(endpoint, body, dict(request.headers), reply)
            await self._note(lambda: self.received.append(call))
            try:
                response = await self._reply(request, endpoint, body, reply)
            except asyncio.CancelledError:  # the caller closed the connection
                await asyncio.shield(self._note(lambda: setattr(call, "outcome", "abandoned")))
                raise
            await self._note(lambda: setattr(call, "outcome", "finished"))
            return response
        return handle

    async def _note(self, change: Callable[[], object]) -> None:
        async with self._changed:
            change()
            self._changed.notify_all()

    async def _reply(self, request: web.Request, endpoint: str, body: Json, reply: Reply) -> web.StreamResponse:
        if isinstance(reply, Fail):
            return _error(reply.status, reply.message)
        if isinstance(reply, Hang) or (isinstance(reply, Stall) and not body.get("stream")):
            await self._closing.wait()
            return _error(503, "arrêt du serveur")
        if isinstance(reply, Answer):
            if reply.release is not None:
                await _first(reply.release, self._closing)
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
        if isinstance(reply, Cut) and not body.get("stream"):
            assert request.transport is not None
            request.transport.close()
            return web.Response()  # never sent: the connection is gone
        if body.get("stream"):
            return await self._stream(request, endpoint, body, reply)
        answer = Answer(reply.text) if isinstance(reply, Truncate) else reply
        assert isinstance(answer, Answer)
        content = orjson.dumps(_embeddings(body, answer) if endpoint == "embeddings"
                               else _completion(endpoint, body, answer))
        if isinstance(reply, Truncate):
            content = content[: len(content) // 2]
        return web.Response(body=content, content_type="application/json")

    async def _stream(self, request: web.Request, endpoint: str, body: Json,
                      reply: Answer | Cut | Truncate | Stall) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
        await response.prepare(request)
        words = reply.text.split()
        choices = _choices(endpoint, body)
        limit = len(words) if isinstance(reply, Answer) else reply.after
        for word in words[:limit]:
            for index in range(choices):
                await _event(response, _chunk(endpoint, body, index, word + " ", None))
        if isinstance(reply, Cut):
            assert request.transport is not None
            request.transport.close()
            return response
        if isinstance(reply, Stall):
            await self._closing.wait()
            return response
        if isinstance(reply, Answer):
            for index in range(choices):
                await _event(response, _chunk(endpoint, body, index, None, "stop"))
            if (body.get("stream_options") or {}).get("include_usage"):
                await _event(response, {**_chunk(endpoint, body, 0, None, None), "choices": [],
                                        "usage": _usage(reply.prompt_tokens, len(words) * choices)})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def _event(response: web.StreamResponse, payload: Json) -> None:
    await response.write(b"data: " + orjson.dumps(payload) + b"\n\n")


def _error(status: int, message: str) -> web.Response:
    kind = "invalid_request_error" if status < 500 and status != 429 else "server_error"
    return web.json_response({"error": {"message": message, "type": kind}}, status=status)


def _choices(endpoint: str, body: Json) -> int:
    """How many answers a call asks for: ``n`` of each, for every prompt of a completions batch."""
    prompt = body.get("prompt")
    prompts = len(prompt) if endpoint == "completions" and isinstance(prompt, list) and prompt else 1
    return (body.get("n") or 1) * prompts


def _usage(prompt: int, completion: int) -> Json:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _chunk(endpoint: str, body: Json, index: int, text: str | None, finish: str | None) -> Json:
    if endpoint == "completions":
        choice: Json = {"index": index, "text": text or "", "finish_reason": finish}
        kind = "text_completion"
    else:
        choice = {"index": index, "delta": {"content": text} if text is not None else {}, "finish_reason": finish}
        kind = "chat.completion.chunk"
    return {"id": "fake-1", "object": kind, "created": int(time.time()), "model": body.get("model"),
            "choices": [choice]}


def _completion(endpoint: str, body: Json, reply: Answer) -> Json:
    words = len(reply.text.split())
    choices = _choices(endpoint, body)
    if endpoint == "completions":
        listed: list[Json] = [{"index": i, "text": reply.text, "finish_reason": "stop"} for i in range(choices)]
        kind = "text_completion"
    else:
        listed = [{"index": i, "message": {"role": "assistant", "content": reply.text}, "finish_reason": "stop"}
                  for i in range(choices)]
        kind = "chat.completion"
    return {"id": "fake-1", "object": kind, "created": int(time.time()), "model": body.get("model"),
            "choices": listed, "usage": _usage(reply.prompt_tokens, words * choices)}


def _embeddings(body: Json, reply: Answer) -> Json:
    texts = body.get("input")
    inputs = [texts] if isinstance(texts, str) else list(texts or [])
    data = [{"object": "embedding", "index": i, "embedding": _vector(str(text))} for i, text in enumerate(inputs)]
    tokens = sum(len(str(text).split()) for text in inputs)
    return {"object": "list", "model": body.get("model"), "data": data,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _vector(text: str) -> list[float]:
    """The same 8 numbers for the same text, so tests can compare embeddings."""
    digest = hashlib.sha256(text.encode()).digest()
    return [byte / 255 for byte in digest[:8]]
