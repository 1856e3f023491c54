"""OpenAI-compatible inference routes: chat, completions, embeddings, and rerank.

The routes are declared here for FastAPI (their OpenAPI schema, and every unusual request), while
:class:`PlainRoutes` serves their hot path as a plain ASGI handler: an ordinary call (a JSON object that
validates, no query string, no search) reaches the service without FastAPI's routing, dependency injection
or response objects, and a stream is written event by event without a second task group. Anything else is
handed, body and all, to the declared route, so every error is FastAPI's own, word for word.
"""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from socle.api.deps import Caller, Inference, answering_service, bearer_token
from socle.api.errors import envelope, error_payload, socle_error_response, unexpected_error
from socle.api.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    RerankRequest,
    result_out,
)
from socle.api.strict import StrictRoute, plainly_readable
from socle.endpoints import Endpoint, Json
from socle.errors import SocleError
from socle.inference.service import InferenceService
from socle.rag import extractive
from socle.rag.answering import question_of, search_option

router = APIRouter(prefix="/v1", tags=["inference"], route_class=StrictRoute)
log = logging.getLogger("socle.api")

_DONE = b"data: [DONE]\n\n"
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
# The same heads as Starlette's Response and StreamingResponse write for these answers, byte for byte.
_SSE_HEAD = ((b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no"),
             (b"content-type", b"text/event-stream; charset=utf-8"))
_JSON_TYPE = (b"content-type", b"application/json")


def _json(payload: Json) -> Response:
    return Response(orjson.dumps(payload), media_type="application/json")


async def _events(chunks: AsyncIterator[Json]) -> AsyncIterator[bytes]:
    """Server-sent events; a failure after the first byte ends the stream with an error event."""
    try:
        async for chunk in chunks:
            yield b"data: " + orjson.dumps(chunk) + b"\n\n"
    except SocleError as exc:
        yield b"data: " + orjson.dumps(error_payload(exc)) + b"\n\n"
        return
    except Exception:
        log.exception("stream failed")
        yield b"data: " + orjson.dumps(envelope("Internal server error.", "server_error")) + b"\n\n"
        return
    yield _DONE


async def _respond(inference: Inference, caller: Caller, endpoint: Endpoint, body: Json) -> Response:
    if body.get("stream"):
        chunks = await inference.stream(caller, endpoint, body)
        return StreamingResponse(_events(chunks), media_type="text/event-stream", headers=_SSE_HEADERS)
    return _json(await inference.call(caller, endpoint, body))


@router.post("/chat/completions", summary="Create a chat completion (streaming with stream=true); with "
             "'search', an answer grounded in documents, with its sources in 'search_results' (by a demonstration "
             "model, the passages that answer, unless search.generate is true)")
async def chat_completions(request: ChatCompletionRequest, http: Request, caller: Caller,
                           inference: Inference) -> Response:
    body = request.model_dump(exclude_unset=True)
    option = search_option(body)
    if option is None:  # the hot path: no retrieval service resolved
        return await _respond(inference, caller, Endpoint.CHAT, body)
    answering = answering_service(http)
    question = question_of(body)
    body, results = await answering.ground(caller, body, option)
    sources = [result_out(result) for result in results]
    if answering.by_extracts(caller, body["model"], generate=option.generate):  # as the web UI answers
        written = extractive.answer(question, results)
        if body.get("stream"):
            return StreamingResponse(_events(_with_sources(extractive.chunks(body["model"], written), sources)),
                                     media_type="text/event-stream", headers=_SSE_HEADERS)
        return _json({**extractive.completion(body["model"], written), "search_results": sources})
    if body.get("stream"):
        chunks = await inference.stream(caller, Endpoint.CHAT, body)
        return StreamingResponse(_events(_with_sources(chunks, sources)), media_type="text/event-stream",
                                 headers=_SSE_HEADERS)
    return _json({**await inference.call(caller, Endpoint.CHAT, body), "search_results": sources})


async def _with_sources(chunks: AsyncIterator[Json], sources: list[Json]) -> AsyncIterator[Json]:
    """The sources ride on the first chunk of the stream, before any of the answer is shown."""
    first = True
    async with aclosing(chunks):
        async for chunk in chunks:
            if first:
                chunk["search_results"], first = sources, False
            yield chunk


@router.post("/completions", summary="Create a text completion")
async def completions(request: CompletionRequest, caller: Caller, inference: Inference) -> Response:
    return await _respond(inference, caller, Endpoint.COMPLETIONS, request.model_dump(exclude_unset=True))


@router.post("/embeddings", summary="Create embeddings")
async def embeddings(request: EmbeddingRequest, caller: Caller, inference: Inference) -> Response:
    return _json(await inference.call(caller, Endpoint.EMBEDDINGS, request.model_dump(exclude_unset=True)))


@router.post("/rerank", summary="Rank documents by relevance to a query (a rerank model); in the Albert API's "
             "shape (data[].score) when asked with its names (prompt, input)")
async def rerank(request: RerankRequest, caller: Caller, inference: Inference) -> Response:
    answer = await inference.call(caller, Endpoint.RERANK, request.model_dump(exclude_unset=True))
    return _json(albert_rerank(answer) if request.albert else answer)


def albert_rerank(answer: Json) -> Json:
    """A Cohere-shaped ranking (``results[].relevance_score``) in the Albert API's shape, best first."""
    data = [{"object": "rerank", "score": item["relevance_score"], "index": item["index"]}
            for item in answer.get("results", [])]
    albert: Json = {"object": "list", "data": data}
    for name in ("id", "model", "usage"):
        if name in answer:
            albert[name] = answer[name]
    return albert


# ---- the hot path, served as plain ASGI -----------------------------------------------------------------

_BODIES: dict[str, tuple[Endpoint, type[BaseModel]]] = {
    "/v1/chat/completions": (Endpoint.CHAT, ChatCompletionRequest),
    "/v1/completions": (Endpoint.COMPLETIONS, CompletionRequest),
    "/v1/embeddings": (Endpoint.EMBEDDINGS, EmbeddingRequest),
    "/v1/rerank": (Endpoint.RERANK, RerankRequest),
}
_STREAMING = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS})


class PlainRoutes:
    """Middleware, the outermost but for the request id: serves ordinary calls to the inference routes and
    hands everything else on, unread or replayed, to the app's stack (body size limit, error pages, origin,
    the UI's middleware). An open stream then holds none of their frames.

    What the stack would do for such a call is done here: a body above ``max_bytes`` is handed on (the size
    limit answers 413), an unexpected error answers the same 500 as the app's handler (logged, then raised for
    the server's own line), and nothing else of the stack applies to these routes (the UI's headers and
    settings are for pages; the origin is for the audit trail, which no inference call writes to)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = _BODIES.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None or scope.get("query_string") or not _is_json(scope) or not self._fits(scope):
            await self.app(scope, receive, send)
            return
        raw, complete = await _read_body(receive, self.max_bytes)
        body = _ordinary_body(raw, *route) if complete else None
        if body is None:  # the declared route answers it, with FastAPI's own checks and errors
            await self.app(scope, _replay(raw, complete, receive), send)
            return
        del raw  # nothing of the request but what the service keeps stays for a stream's life
        chunks = await _answer(scope, receive, send, route[0], body)
        if chunks is not None:
            del body
            await _stream(receive, send, chunks)

    def _fits(self, scope: Scope) -> bool:
        """Whether the declared Content-Length is within the limit (the size limit answers the others)."""
        for name, value in scope["headers"]:
            if name == b"content-length":
                return value.isdigit() and int(value) <= self.max_bytes
        return True


async def _answer(scope: Scope, receive: Receive, send: Send, endpoint: Endpoint,
                  body: Json) -> AsyncIterator[Json] | None:
    """Answer the call, or open its stream (then returned, to be written)."""
    platform = scope["app"].state.platform
    inference: InferenceService = platform.inference
    try:
        caller = await platform.identity.authenticate(bearer_token(_authorization(scope)))
        if endpoint in _STREAMING and body.get("stream"):
            return await inference.stream(caller, endpoint, body)
        data = orjson.dumps(await inference.call(caller, endpoint, body))
    except SocleError as exc:
        await socle_error_response(exc)(scope, receive, send)
        return None
    except Exception as exc:  # as the app's stack answers an unhandled error, then raised for the server's line
        await (await unexpected_error(None, exc))(scope, receive, send)
        raise
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(data)).encode()), _JSON_TYPE]})
    await send({"type": "http.response.body", "body": data})
    return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.partition(b";")[0].strip().lower() == b"application/json"
    return False


def _authorization(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return value.decode("latin-1")
    return ""


async def _read_body(receive: Receive, max_bytes: int) -> tuple[bytes, bool]:
    """The body, and whether it came whole: False when the client left before its end, or once it is larger
    than ``max_bytes`` (then handed on, for the size limit to refuse)."""
    parts = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(parts), False
        part = message.get("body", b"")
        parts.append(part)
        size += len(part)
        if size > max_bytes:
            return b"".join(parts), False
        if not message.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts), True


def _ordinary_body(raw: bytes, endpoint: Endpoint, model: type[BaseModel]) -> Json | None:
    """The request as the declared route would hand it to the service, or None when it is not an ordinary
    call: text the strict rule must look at closer, not a valid JSON object, or a chat with a search."""
    if not plainly_readable(raw):
        return None
    try:
        value: Any = orjson.loads(raw)
        if not isinstance(value, dict):
            return None
        body = model.model_validate(value).model_dump(exclude_unset=True)
    except (orjson.JSONDecodeError, ValidationError):
        return None
    if endpoint is Endpoint.CHAT:
        if body.get("search") not in (None, False):
            return None
        search_option(body)  # takes an empty search option out, as the declared route does
    if endpoint is Endpoint.RERANK and ("prompt" in value or "input" in value):
        return None  # the Albert API's names: its answer's shape, which the declared route writes
    return body


def _replay(raw: bytes, complete: bool, receive: Receive) -> Receive:
    """``receive`` with what was read of the body given back first."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": raw, "more_body": not complete}
        return await receive()

    return replay


async def _stream(receive: Receive, send: Send, chunks: AsyncIterator[Json]) -> None:
    """Write the chunks as events as they come, as :func:`_events` words them (without a generator of its own
    held for the stream's life). A client that left is seen before each write (the server drops writes to a
    closed connection without a word) and its stream closed then, which closes the backend's: no task per open
    stream waits on ``receive`` (it held about 1 KiB each); a backend that sends nothing keeps a departed
    client's stream until its next event, which generation makes frequent."""
    async with aclosing(chunks):  # closing the chunks stops the backend
        await send({"type": "http.response.start", "status": 200, "headers": list(_SSE_HEAD)})
        while True:
            try:  # the stream's failures only, not the client's
                chunk = await anext(chunks)
            except StopAsyncIteration:
                last = _DONE
                break
            except SocleError as exc:
                last = b"data: " + orjson.dumps(error_payload(exc)) + b"\n\n"
                break
            except Exception:
                log.exception("stream failed")
                last = b"data: " + orjson.dumps(envelope("Internal server error.", "server_error")) + b"\n\n"
                break
            if _left(receive):
                return  # the answer ends here
            event = b"data: " + orjson.dumps(chunk) + b"\n\n"
            del chunk  # not held while the next one is awaited
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": last, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _left(receive: Receive) -> bool:
    """Whether the client has left, asked without waiting: ``receive()`` is stepped once and, when it would wait
    (the connection is open and the body was read), closed again, which withdraws its waiter."""
    steps = receive().__await__()
    try:
        next(steps)
    except StopIteration as done:
        return bool(done.value["type"] == "http.disconnect")
    steps.close()
    return False
