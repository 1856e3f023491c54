"""The chat page, and the stream it reads an answer from.

The answer comes as NDJSON lines: ``delta`` events (text, shown with ``textContent`` as it arrives), then
``done`` with the whole answer rendered as Markdown on the server (raw HTML escaped), or ``error``. When the
browser aborts the fetch (the stop button), the response's generator is cancelled and closing it stops the
model: the same path as an API client that leaves.
"""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Literal

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response, StreamingResponse

from socle.errors import SocleError
from socle.identity.permissions import Permission
from socle.inference.backends.base import Endpoint, Json
from socle.ui import markdown
from socle.ui.security import SignedIn, platform
from socle.ui.web import french, page

router = APIRouter(prefix="/ui", include_in_schema=False)
log = logging.getLogger("socle.ui")


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    content: str = Field(max_length=100_000)


class ChatTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=200)
    messages: list[Message] = Field(min_length=1, max_length=200)


@router.get("/chat")
async def chat_page(request: Request, visitor: SignedIn) -> Response:
    models: list[str] = []
    if visitor.principal.can(Permission.MODELS_USE) and visitor.principal.can(Permission.MODELS_READ):
        inference = platform(request).inference
        assert inference is not None, "inference is started in the app's lifespan"
        models = [m.id for m in inference.list_models(visitor.principal) if m.config.type == "chat"]
    return page(request, "chat.html", visitor, title="Chat", models=models)


@router.post("/api/chat")
async def chat_stream(turn: ChatTurn, request: Request, visitor: SignedIn) -> Response:
    inference = platform(request).inference
    assert inference is not None, "inference is started in the app's lifespan"
    body: Json = {"model": turn.model, "messages": [m.model_dump() for m in turn.messages], "stream": True}
    chunks = await inference.stream(visitor.principal, Endpoint.CHAT, body)  # errors before the first token: HTTP
    return StreamingResponse(_events(chunks), media_type="application/x-ndjson",
                             headers={"x-accel-buffering": "no"})


def _line(event: Json) -> bytes:
    return orjson.dumps(event) + b"\n"


async def _events(chunks: AsyncIterator[Json]) -> AsyncIterator[bytes]:
    parts: list[str] = []
    try:
        async with aclosing(chunks):  # cancelled when the browser leaves: closing stops the backend
            async for chunk in chunks:
                for choice in chunk.get("choices") or ():
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        parts.append(text)
                        yield _line({"type": "delta", "text": text})
    except SocleError as exc:
        yield _line({"type": "error", "message": french(exc)})
        return
    except Exception:
        log.exception("chat stream failed")
        yield _line({"type": "error", "message": "La réponse a été interrompue par une erreur."})
        return
    yield _line({"type": "done", "html": markdown.to_html("".join(parts))})
