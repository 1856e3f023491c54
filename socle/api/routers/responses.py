"""``/v1/responses``: OpenAI's Responses API, for the openai SDK's ``client.responses`` and the agent frameworks
that call it (the openai-agents SDK).

Each response is a chat call of the same inference service (quotas, usage, routing as for chat completions).
With ``stream: true`` the answer comes as server-sent events, each named by its ``type`` (``event:`` line and
``type`` field alike): ``response.created`` … ``response.completed``. Stored responses are their owner's alone:
another user's id answers 404.
"""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.responses import Response, StreamingResponse

from socle.api.deps import Caller, platform
from socle.api.strict import StrictRoute
from socle.endpoints import Json
from socle.responses.service import ResponseService

router = APIRouter(prefix="/v1", tags=["responses"], route_class=StrictRoute)
log = logging.getLogger("socle.api")

_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_Key = Annotated[str, StringConstraints(max_length=64)]
_Value = Annotated[str, StringConstraints(max_length=512)]
_ResponseId = Annotated[str, Path(max_length=64)]


class TextOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: dict[str, Any] | None = None
    verbosity: str | None = None


class Reasoning(BaseModel):
    """For reasoning models: the effort is passed to the chat call; summaries are refused (none is written)."""

    model_config = ConfigDict(extra="forbid")
    effort: Literal["minimal", "low", "medium", "high"] | None = None
    summary: str | None = None
    generate_summary: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_obfuscation: bool | None = None  # OpenAI pads its events against side channels; none are padded here


class ResponseRequest(BaseModel):
    """The fields of OpenAI's request that this platform reads; any other one is refused by name (400)."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=256)
    input: str | Annotated[list[dict[str, Any]], Field(min_length=1, max_length=10_000)] = Field(
        description="A text (the user's message) or a list of items: messages, function_call and "
                    "function_call_output items")
    instructions: str | None = Field(default=None, description="A system message; not carried over to the "
                                     "responses that continue this one")
    previous_response_id: str | None = Field(default=None, max_length=64,
                                             description="Continue from this stored response of yours")
    store: bool = Field(default=True, description="Keep the response, to read it again or continue from it")
    tools: list[dict[str, Any]] | None = Field(default=None, max_length=128,
                                               description="Function tools only ({type: function, name, ...})")
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_output_tokens: int | None = Field(default=None, ge=1)
    text: TextOptions | None = None
    metadata: Annotated[dict[_Key, _Value], Field(max_length=16)] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(default=None, max_length=256)
    safety_identifier: str | None = Field(default=None, max_length=256)
    prompt_cache_key: str | None = Field(default=None, max_length=256)
    include: list[str] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    reasoning: Reasoning | None = None


async def _service(request: Request) -> ResponseService:
    return platform(request).responses


Responses = Annotated[ResponseService, Depends(_service)]


def _json(payload: Json) -> Response:
    return Response(orjson.dumps(payload), media_type="application/json")


async def _sse(events: AsyncIterator[Json]) -> AsyncIterator[bytes]:
    """Each event as OpenAI writes it: its type on an ``event:`` line, then its data."""
    try:
        async for event in events:
            yield b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
    except Exception:  # the service ends a failed answer with response.failed; anything else is a bug
        log.exception("response stream failed")
        error = {"type": "error", "code": "server_error", "message": "Internal server error.", "param": None}
        yield b"event: error\ndata: " + orjson.dumps(error) + b"\n\n"


@router.post("/responses", summary="Create a model response (OpenAI's Responses API; streaming with stream=true)")
async def create_response(request: ResponseRequest, caller: Caller, service: Responses) -> Response:
    body = request.model_dump(exclude_unset=True)
    if request.stream:
        return StreamingResponse(_sse(await service.stream(caller, body)), media_type="text/event-stream",
                                 headers=_SSE_HEADERS)
    return _json(await service.create(caller, body))


@router.get("/responses/{response_id}", summary="A stored response of yours")
async def get_response(response_id: _ResponseId, caller: Caller, service: Responses) -> Response:
    return _json(await service.get(caller, response_id))


@router.delete("/responses/{response_id}", summary="Delete a stored response of yours")
async def delete_response(response_id: _ResponseId, caller: Caller, service: Responses) -> Response:
    await service.delete(caller, response_id)
    return _json({"id": response_id, "object": "response.deleted", "deleted": True})


@router.get("/responses/{response_id}/input_items", summary="The items a stored response of yours was given")
async def list_input_items(response_id: _ResponseId, caller: Caller, service: Responses,
                           limit: Annotated[int, Query(ge=1, le=100)] = 20,
                           order: Literal["asc", "desc"] = "desc",
                           after: Annotated[str | None, Query(max_length=64)] = None) -> Response:
    items, more = await service.input_items(caller, response_id, limit=limit, order=order, after=after)
    return _json({"object": "list", "data": items, "first_id": items[0]["id"] if items else None,
                  "last_id": items[-1]["id"] if items else None, "has_more": more})

