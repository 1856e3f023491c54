"""OpenAI-compatible inference routes: chat, completions, embeddings."""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import orjson
from fastapi import APIRouter
from starlette.responses import Response, StreamingResponse

from socle.api.deps import Caller, Inference
from socle.api.errors import envelope, error_payload
from socle.api.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from socle.errors import SocleError
from socle.inference.backends.base import Endpoint, Json

router = APIRouter(prefix="/v1", tags=["inference"])
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


@router.post("/chat/completions", summary="Create a chat completion (streaming with stream=true)")
async def chat_completions(request: ChatCompletionRequest, caller: Caller, inference: Inference) -> Response:
    return await _answer(inference, caller, Endpoint.CHAT, request.model_dump(exclude_unset=True))


@router.post("/completions", summary="Create a text completion")
async def completions(request: CompletionRequest, caller: Caller, inference: Inference) -> Response:
    return await _answer(inference, caller, Endpoint.COMPLETIONS, request.model_dump(exclude_unset=True))


@router.post("/embeddings", summary="Create embeddings")
async def embeddings(request: EmbeddingRequest, caller: Caller, inference: Inference) -> Response:
    return _json(await inference.call(caller, Endpoint.EMBEDDINGS, request.model_dump(exclude_unset=True)))
