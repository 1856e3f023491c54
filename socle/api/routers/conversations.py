"""``/v1/conversations``: the caller's conversations kept by the platform, and turns taken in them.

The same conversations as the web UI's chat, each its owner's alone: another user's answers 404, as if it
did not exist. A turn (``POST /v1/conversations/{id}/messages``) sends one question; the history the model is
given is the conversation's own, read from the database. With ``collections`` the answer is grounded in the
excerpts found there, kept as its ``sources``. Without ``stream`` the saved answer comes back; with
``stream: true`` it comes as server-sent events, each a JSON object named by its ``object``:
``conversation.message`` (the question, saved), ``conversation.sources`` (for a question about documents: the
excerpts, before the answer), ``conversation.message.delta`` (text as the model writes it), then
``conversation.message`` (the answer, saved) and ``[DONE]``; a failure once streaming has begun ends the
stream with an error envelope instead. A client that leaves stops the model; what it wrote is kept.
"""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import datetime
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response, StreamingResponse

from socle.api.deps import Caller, Conversations, Turns
from socle.api.errors import envelope, error_payload
from socle.api.schemas import ListOf
from socle.api.strict import StrictRoute
from socle.chat.conversations import TITLE_LENGTH
from socle.chat.turns import Turn
from socle.db.integers import Id, Offset
from socle.db.models import Conversation, Message
from socle.endpoints import Json
from socle.errors import SocleError

router = APIRouter(prefix="/v1", tags=["conversations"], route_class=StrictRoute)
log = logging.getLogger("socle.api")

_DONE = b"data: [DONE]\n\n"
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


class ConversationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=TITLE_LENGTH)
    model: str = Field(min_length=1, max_length=200, description="The chat model its turns ask by default")


class ConversationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=TITLE_LENGTH)


class TurnCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: str = Field(min_length=1, max_length=100_000, description="The question")
    model: str | None = Field(default=None, min_length=1, max_length=200,
                              description="A chat model; by default the conversation's latest")
    collections: list[Id] = Field(default_factory=list, max_length=100,
                                  description="Collections to ground the answer in (its sources)")
    generate: bool = Field(default=False, description="With a demonstration model, its own written answer about "
                           "documents rather than the passages that answer (the default)")
    stream: bool = False


class ConversationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)
    id: int
    object: Literal["conversation"] = "conversation"
    title: str
    model: str
    collections: list[int] = Field(validation_alias="collection_ids",
                                   description="The collections its latest turn was grounded in")
    created_at: datetime
    updated_at: datetime


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    object: Literal["conversation.message"] = "conversation.message"
    conversation_id: int
    role: Literal["user", "assistant"]
    content: str
    model: str | None
    sources: list[dict[str, Any]] | None = Field(description="An answer's excerpts of documents, numbered as "
                                                 "it cites them ([1])")
    rating: int | None
    rating_comment: str | None
    created_at: datetime


class ConversationDetail(ConversationOut):
    messages: list[MessageOut] = Field(description="Its latest 1000 messages, oldest first")


@router.get("/conversations", response_model=ListOf, summary="My conversations, the latest continued first")
async def list_conversations(caller: Caller, conversations: Conversations,
                             limit: int = Query(100, ge=1, le=1000), offset: Offset = 0) -> ListOf:
    return ListOf(data=[_conversation(c) for c in await conversations.list(caller, limit=limit, offset=offset)])


@router.post("/conversations", response_model=ConversationOut, status_code=status.HTTP_201_CREATED)
async def create_conversation(body: ConversationCreate, caller: Caller, turns: Turns) -> ConversationOut:
    return _conversation(await turns.start(caller, title=body.title, model=body.model))


@router.get("/conversations/{conversation_id}", response_model=ConversationDetail,
            summary="A conversation and its messages")
async def get_conversation(conversation_id: Id, caller: Caller, conversations: Conversations) -> ConversationDetail:
    conversation, messages = await conversations.messages(caller, conversation_id)
    return ConversationDetail(**_conversation(conversation).model_dump(),
                              messages=[MessageOut.model_validate(m) for m in messages])


@router.patch("/conversations/{conversation_id}", response_model=ConversationOut, summary="Rename a conversation")
async def update_conversation(conversation_id: Id, body: ConversationUpdate, caller: Caller,
                              conversations: Conversations) -> ConversationOut:
    return _conversation(await conversations.rename(caller, conversation_id, body.title))


@router.delete("/conversations/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_conversation(conversation_id: Id, caller: Caller, turns: Turns) -> None:
    await turns.delete(caller, conversation_id)  # with the files dropped into it


@router.post("/conversations/{conversation_id}/messages", response_model=MessageOut,
             summary="Ask a question in a conversation: the answer, saved (server-sent events with stream=true)")
async def take_turn(conversation_id: Id, body: TurnCreate, caller: Caller, turns: Turns) -> Response:
    turn = await turns.take(caller, body.content, model=body.model, conversation_id=conversation_id,
                            collections=body.collections, generate=body.generate)
    if body.stream:
        return StreamingResponse(_events(turn), media_type="text/event-stream", headers=_SSE_HEADERS)
    return Response(orjson.dumps(_message(await turn.complete())), media_type="application/json")


def _conversation(conversation: Conversation) -> ConversationOut:
    return ConversationOut.model_validate(conversation)


def _message(message: Message) -> Json:
    return MessageOut.model_validate(message).model_dump(mode="json")


def _event(payload: Json) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def _events(turn: Turn) -> AsyncIterator[bytes]:
    conversation_id = turn.conversation.id
    failure: Json | None = None
    try:
        yield _event(_message(turn.question))
        if turn.sources is not None:
            yield _event({"object": "conversation.sources", "conversation_id": conversation_id,
                          "data": turn.sources})
        async with aclosing(turn.text()) as pieces:  # closed when the client leaves: the model stops
            async for piece in pieces:
                yield _event({"object": "conversation.message.delta", "conversation_id": conversation_id,
                              "delta": {"content": piece}})
    except SocleError as exc:
        failure = error_payload(exc)
    except Exception:
        log.exception("conversation stream failed")
        failure = envelope("Internal server error.", "server_error")
    finally:  # ended, failed or stopped: what was generated is kept
        await turn.close()
    if failure is None and turn.answer is None:
        failure = envelope("The answer was written but could not be saved.", "server_error")
    if failure is not None:
        yield _event(failure)
        return
    assert turn.answer is not None
    yield _event(_message(turn.answer))
    yield _DONE
