"""OpenAI-compatible inference routes: chat, completions, embeddings, and rerank."""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from socle.api.deps import Caller, Inference, answering_service
from socle.api.errors import envelope, error_payload
from socle.api.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    RerankRequest,
    result_out,
)
from socle.api.strict import StrictRoute
from socle.endpoints import Endpoint, Json
from socle.errors import SocleError
from socle.rag.answering import search_option

router = APIRouter(prefix="/v1", tags=["inference"], route_class=StrictRoute)
log = logging.getLogger("socle.api")

_DONE = b"data: [DONE]\n\n"
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


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


async def _answer(inference: Inference, caller: Caller, endpoint: Endpoint, body: Json) -> Response:
    if body.get("stream"):
        chunks = await inference.stream(caller, endpoint, body)
        return StreamingResponse(_events(chunks), media_type="text/event-stream", headers=_SSE_HEADERS)
    return _json(await inference.call(caller, endpoint, body))


@router.post("/chat/completions", summary="Create a chat completion (streaming with stream=true); with "
             "'search', an answer grounded in documents, with its sources in 'search_results'")
async def chat_completions(request: ChatCompletionRequest, http: Request, caller: Caller,
                           inference: Inference) -> Response:
    body = request.model_dump(exclude_unset=True)
    option = search_option(body)
    if option is None:  # the hot path: no retrieval service resolved
        return await _answer(inference, caller, Endpoint.CHAT, body)
    body, results = await answering_service(http).ground(caller, body, option)
    sources = [result_out(result) for result in results]
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
    return await _answer(inference, caller, Endpoint.COMPLETIONS, request.model_dump(exclude_unset=True))


@router.post("/embeddings", summary="Create embeddings")
async def embeddings(request: EmbeddingRequest, caller: Caller, inference: Inference) -> Response:
    return _json(await inference.call(caller, Endpoint.EMBEDDINGS, request.model_dump(exclude_unset=True)))


@router.post("/rerank", summary="Rank documents by relevance to a query (a rerank model)")
async def rerank(request: RerankRequest, caller: Caller, inference: Inference) -> Response:
    return _json(await inference.call(caller, Endpoint.RERANK, request.model_dump(exclude_unset=True)))
