"""The chat and "Interroger mes documents" pages, my conversations, the stream an answer is read from, and
rating answers.

A turn sends only the new question and the conversation's id: the history the model is given is read from
the database, never taken from the browser. The answer comes as NDJSON lines: ``conversation`` (its id,
once saved), ``sources`` (for a question about documents: the excerpts found, as data that the page shows
as text), ``delta`` events (text, shown with ``textContent`` as it arrives), then ``done`` with the whole
answer rendered as Markdown on the server (raw HTML escaped) and the saved message's rating form, or
``error``. When the browser aborts the fetch (the stop button), the response's generator is cancelled and
closing it stops the model — the same path as an API client that leaves — and what was generated is saved.
"""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Annotated, Any, Literal

import anyio
import orjson
from fastapi import APIRouter, Form, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response, StreamingResponse

from socle.api.strict import StrictRoute
from socle.chat.conversations import COMMENT_LENGTH, TITLE_LENGTH, sources_of, title_of
from socle.db.integers import Id
from socle.db.models import Conversation, Message
from socle.errors import SocleError
from socle.identity.permissions import Permission
from socle.inference.backends.base import Endpoint, Json
from socle.rag.answering import SearchOption
from socle.settings import ModelCard
from socle.ui import markdown
from socle.ui.security import SignedIn, Visitor, platform
from socle.ui.web import TEMPLATES, error_page, french, page, redirect, status_of

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=StrictRoute)
log = logging.getLogger("socle.ui")
HISTORY_CHARS = 12_000  # of earlier turns given to the model: a small model's context is short
SOURCES_K = 5


class ChatTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=200)
    content: str = Field(min_length=1, max_length=100_000)
    conversation: Id | None = None
    collections: list[Id] = Field(default_factory=list, max_length=100)


@router.get("/chat")
async def chat_page(request: Request, visitor: SignedIn) -> Response:
    return await _render(request, visitor, mode="chat")


@router.get("/interroger")
async def ask_documents_page(request: Request, visitor: SignedIn) -> Response:
    return await _render(request, visitor, mode="documents")


@router.get("/chat/{conversation_id}")
async def conversation_page(conversation_id: Id, request: Request, visitor: SignedIn) -> Response:
    try:
        conversation, messages = await platform(request).conversations.messages(visitor.principal,
                                                                                 conversation_id)
    except SocleError as exc:
        return error_page(request, visitor, status_of(exc), french(exc))
    return await _render(request, visitor, mode="documents" if conversation.collection_ids else "chat",
                         conversation=conversation, messages=messages)


@router.post("/chat/{conversation_id}/renommer")
async def rename(conversation_id: Id, request: Request, visitor: SignedIn,
                 title: Annotated[str, Form(max_length=TITLE_LENGTH)]) -> Response:
    try:
        await platform(request).conversations.rename(visitor.principal, conversation_id, title)
    except SocleError as exc:
        return error_page(request, visitor, status_of(exc), french(exc))
    return redirect(f"/ui/chat/{conversation_id}?ok=conversation-renommee")


@router.post("/chat/{conversation_id}/supprimer")
async def delete(conversation_id: Id, request: Request, visitor: SignedIn) -> Response:
    try:
        await platform(request).conversations.delete(visitor.principal, conversation_id)
    except SocleError as exc:
        return error_page(request, visitor, status_of(exc), french(exc))
    return redirect("/ui/chat?ok=conversation-supprimee")


@router.post("/chat/{conversation_id}/messages/{message_id}/avis")
async def rate(conversation_id: Id, message_id: Id, request: Request, visitor: SignedIn,
               rating: Annotated[Literal["1", "-1"] | None, Form()] = None,
               comment: Annotated[str | None, Form(max_length=COMMENT_LENGTH)] = None) -> Response:
    """A thumb (``rating``), or a comment: two forms of the same answer, each saved on its own."""
    conversations = platform(request).conversations
    try:
        await conversations.get(visitor.principal, conversation_id)  # the address names my conversation
        if rating is not None:
            await conversations.rate(visitor.principal, message_id, int(rating))
        if comment is not None:
            await conversations.comment(visitor.principal, message_id, comment)
    except SocleError as exc:
        return error_page(request, visitor, status_of(exc), french(exc))
    return redirect(f"/ui/chat/{conversation_id}?ok=avis-enregistre#message-{message_id}")


@router.post("/api/chat")
async def chat_stream(turn: ChatTurn, request: Request, visitor: SignedIn) -> Response:
    p, principal = platform(request), visitor.principal
    inference, answering = p.inference, p.answering
    assert inference is not None and answering is not None, "inference is started in the app's lifespan"
    conversations = p.conversations
    if not turn.content.strip():
        return JSONResponse({"error": {"message": "Écrivez votre message."}}, status_code=400)
    try:
        existing = (await conversations.get(principal, turn.conversation) if turn.conversation is not None
                    else None)
        history = (await conversations.history(principal, existing.id, max_chars=HISTORY_CHARS)
                   if existing is not None else [])
        body: Json = {"model": turn.model, "messages": [*history, {"role": "user", "content": turn.content}],
                      "stream": True}
        sources: list[dict[str, Any]] | None = None
        if turn.collections:
            body, results = await answering.ground(principal, body, SearchOption(collections=turn.collections,
                                                                                 k=SOURCES_K))
            sources = sources_of(results)
        chunks = await inference.stream(principal, Endpoint.CHAT, body)  # errors before the first token: HTTP
    except SocleError as exc:
        return JSONResponse({"error": {"message": french(exc)}}, status_code=status_of(exc))
    try:  # the question is kept once the model has taken it
        conversation = existing or await conversations.start(principal, title=title_of(turn.content),
                                                             model=turn.model, collection_ids=turn.collections)
        await conversations.add(principal, conversation.id, role="user", content=turn.content, model=turn.model,
                                collection_ids=turn.collections if existing is not None else None)
    except BaseException:
        await chunks.aclose()
        raise

    async def save(text: str) -> Message | None:
        if not text and not sources:
            return None
        return await conversations.add(principal, conversation.id, role="assistant", content=text,
                                       model=turn.model, sources=sources)

    opening: list[Json] = [{"type": "conversation", "id": conversation.id, "title": conversation.title,
                            "url": f"/ui/chat/{conversation.id}"}]
    if sources is not None:
        opening.append({"type": "sources", "sources": [_linked(source) for source in sources]})
    return StreamingResponse(_events(opening, chunks, save, visitor, conversation),
                             media_type="application/x-ndjson", headers={"x-accel-buffering": "no"})


def _line(event: Json) -> bytes:
    return orjson.dumps(event) + b"\n"


def _linked(source: dict[str, Any]) -> dict[str, Any]:
    """A source as the page shows it: with the address of its passage."""
    return {**source, "url": passage_url(source)}


def passage_url(source: dict[str, Any]) -> str:
    return (f"/ui/documents/{int(source['collection_id'])}/documents/{int(source['document_id'])}"
            f"#passage-{int(source['chunk'])}")


Save = Callable[[str], Awaitable[Message | None]]


async def _events(opening: list[Json], chunks: AsyncIterator[Json], save: Save, visitor: Visitor,
                  conversation: Conversation) -> AsyncIterator[bytes]:
    parts: list[str] = []
    saved: Message | None = None
    failure: str | None = None
    try:
        for event in opening:
            yield _line(event)
        async with aclosing(chunks):  # cancelled when the browser leaves: closing stops the backend
            async for chunk in chunks:
                for choice in chunk.get("choices") or ():
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        parts.append(text)
                        yield _line({"type": "delta", "text": text})
    except SocleError as exc:
        failure = french(exc)
    except Exception:
        log.exception("chat stream failed")
        failure = "La réponse a été interrompue par une erreur."
    finally:  # ended, failed or stopped: what was generated is kept (shielded: a stop cancels this task)
        with anyio.CancelScope(shield=True):
            try:
                saved = await save("".join(parts))
            except Exception:
                log.exception("saving an answer failed")
    if failure is not None:
        yield _line({"type": "error", "message": failure})
        return
    rating = "" if saved is None else TEMPLATES.get_template("_avis.html").render(
        visitor=visitor, conversation=conversation, message=saved)
    yield _line({"type": "done", "html": markdown.to_html("".join(parts)), "rating_html": rating,
                 "message": saved.id if saved else None})


async def _render(request: Request, visitor: Visitor, *, mode: Literal["chat", "documents"],
                  conversation: Conversation | None = None, messages: list[Message] | None = None) -> Response:
    p = platform(request)
    models: list[str] = []
    cards: dict[str, ModelCard | None] = {}  # read before choosing a model (AI Act transparency)
    if visitor.principal.can(Permission.MODELS_USE) and visitor.principal.can(Permission.MODELS_READ):
        inference = p.inference
        assert inference is not None, "inference is started in the app's lifespan"
        cards = {m.id: m.config.model_card for m in inference.list_models(visitor.principal)
                 if m.config.type == "chat"}
        models = list(cards)
    collections = await p.collections.list(visitor.principal, limit=1000) if mode == "documents" else []
    conversations = await p.conversations.list(visitor.principal, limit=200)
    if conversation is not None:
        title = conversation.title
    else:
        title = "Interroger mes documents" if mode == "documents" else "Chat"
    return page(request, "chat.html", visitor, title=title, mode=mode, models=models, cards=cards,
                collections=collections,
                conversations=conversations, conversation=conversation, messages=messages or [],
                checked=set(conversation.collection_ids) if conversation else set(),
                section="/ui/interroger" if mode == "documents" else "/ui/chat", passage_url=passage_url)
