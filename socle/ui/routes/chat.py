"""The chat and "Interroger mes documents" pages, my conversations, the stream an answer is read from, and
rating answers.

A turn sends only the new question and the conversation's id; the turn itself (history read from the database,
grounding, the model's stream, saving) is :class:`socle.chat.turns.ChatTurns`'s, shared with the API. The
answer comes to the page as NDJSON lines: ``conversation`` (its id, once saved), ``sources`` (for a question
about documents: the excerpts found, as data that the page shows as text), ``delta`` events (text, shown with
``textContent`` as it arrives), then ``done`` with the whole answer rendered as Markdown on the server (raw
HTML escaped) and the saved message's rating form, or ``error``. While the answer streams, a ``delta`` also
carries, a few times a second, the answer so far rendered by the same renderer (``html``): the page shows
Markdown as it comes without ever putting the model's own HTML in the page. When the browser aborts the fetch (the stop button), the response's generator is cancelled and
closing it stops the model — the same path as an API client that leaves — and what was generated is saved.
"""
from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import anyio.to_thread
import orjson
from fastapi import APIRouter, Form, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response, StreamingResponse

from socle.api.strict import StrictRoute
from socle.chat import export
from socle.chat.conversations import COMMENT_LENGTH, SEARCH_LENGTH, TITLE_LENGTH, Shown
from socle.chat.turns import Turn
from socle.db.integers import Id
from socle.db.models import Conversation
from socle.endpoints import Json
from socle.errors import SocleError
from socle.identity.permissions import Permission
from socle.rag import extractive
from socle.settings import ModelCard
from socle.ui import markdown
from socle.ui.security import SignedIn, Visitor, platform
from socle.ui.web import TEMPLATES, french, page, redirect, site_of

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=StrictRoute)
log = logging.getLogger("socle.ui")


class ChatTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=200)
    content: str = Field(default="", max_length=100_000)
    conversation: Id | None = None
    collections: list[Id] = Field(default_factory=list, max_length=100)
    edit: Id | None = None  # a question of the conversation that this one is a new version of
    again: Id | None = None  # an answer of the conversation to write again
    generate: bool = False  # a demonstration model writes its own answer about documents (else: extracts)


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """A chat model of the picker: its card (read before choosing, AI Act transparency) and whether it can
    answer now (an unavailable one is shown, marked, and cannot be chosen)."""

    id: str
    card: ModelCard | None
    available: bool


HTML_EVERY_S = 0.25  # how often a streaming answer is rendered again as Markdown


@router.get("/chat")
async def chat_page(request: Request, visitor: SignedIn,
                    q: Annotated[str | None, Query(max_length=SEARCH_LENGTH)] = None) -> Response:
    return await _render(request, visitor, mode="chat", search=q)


@router.get("/interroger")
async def ask_documents_page(request: Request, visitor: SignedIn) -> Response:
    return await _render(request, visitor, mode="documents")


@router.get("/chat/{conversation_id}")
async def conversation_page(conversation_id: Id, request: Request, visitor: SignedIn) -> Response:
    conversation, shown = await platform(request).conversations.branch(visitor.principal, conversation_id)
    return await _render(request, visitor, mode="documents" if conversation.collection_ids else "chat",
                         conversation=conversation, shown=shown)


@router.post("/chat/{conversation_id}/version")
async def switch_version(conversation_id: Id, request: Request, visitor: SignedIn,
                         message: Annotated[Id, Form()]) -> Response:
    """Show another version of a message (and the answers that follow it)."""
    await platform(request).conversations.switch(visitor.principal, conversation_id, message)
    return redirect(f"/ui/chat/{conversation_id}#message-{message}")


@router.get("/chat/{conversation_id}/export.md")
async def export_markdown(conversation_id: Id, request: Request, visitor: SignedIn) -> Response:
    conversation, messages = await platform(request).conversations.messages(visitor.principal, conversation_id)
    return Response(export.to_markdown(conversation, messages), media_type="text/markdown; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="conversation-{conversation.id}.md"'})


@router.get("/chat/{conversation_id}/export.pdf")
async def export_pdf(conversation_id: Id, request: Request, visitor: SignedIn) -> Response:
    conversation, messages = await platform(request).conversations.messages(visitor.principal, conversation_id)
    document = await anyio.to_thread.run_sync(export.to_pdf, conversation, messages)  # CPU-bound: off the loop
    return Response(document, media_type="application/pdf",
                    headers={"content-disposition": f'attachment; filename="conversation-{conversation.id}.pdf"'})


@router.post("/chat/{conversation_id}/renommer")
async def rename(conversation_id: Id, request: Request, visitor: SignedIn,
                 title: Annotated[str, Form(max_length=TITLE_LENGTH)]) -> Response:
    await platform(request).conversations.rename(visitor.principal, conversation_id, title)
    return redirect(f"/ui/chat/{conversation_id}?ok=conversation-renommee")


@router.post("/chat/{conversation_id}/supprimer")
async def delete(conversation_id: Id, request: Request, visitor: SignedIn) -> Response:
    await platform(request).chat_turns.delete(visitor.principal, conversation_id)  # with its dropped files
    return redirect("/ui/chat?ok=conversation-supprimee")


@router.post("/chat/{conversation_id}/messages/{message_id}/avis")
async def rate(conversation_id: Id, message_id: Id, request: Request, visitor: SignedIn,
               rating: Annotated[Literal["1", "-1"] | None, Form()] = None,
               comment: Annotated[str | None, Form(max_length=COMMENT_LENGTH)] = None) -> Response:
    """A thumb (``rating``), or a comment: two forms of the same answer, each saved on its own."""
    conversations = platform(request).conversations
    await conversations.get(visitor.principal, conversation_id)  # the address names my conversation
    if rating is not None:
        await conversations.rate(visitor.principal, message_id, int(rating))
    if comment is not None:
        await conversations.comment(visitor.principal, message_id, comment)
    return redirect(f"/ui/chat/{conversation_id}?ok=avis-enregistre#message-{message_id}")


@router.post("/api/chat")
async def chat_stream(turn: ChatTurn, request: Request, visitor: SignedIn) -> Response:
    if turn.again is None and not turn.content.strip():
        return JSONResponse({"error": {"message": "Écrivez votre message."}}, status_code=400)
    # A refusal before the first token (nothing saved) is the page's JSON error, shown under the question.
    taken = await platform(request).chat_turns.take(visitor.principal, turn.content, model=turn.model,
                                                    conversation_id=turn.conversation, collections=turn.collections,
                                                    edit=turn.edit, again=turn.again, generate=turn.generate)
    return StreamingResponse(_events(taken, visitor), media_type="application/x-ndjson",
                             headers={"x-accel-buffering": "no"})


def _line(event: Json) -> bytes:
    return orjson.dumps(event) + b"\n"


def _linked(source: dict[str, Any]) -> dict[str, Any]:
    """A source as the page shows it: with the address of its passage."""
    return {**source, "url": passage_url(source)}


def passage_url(source: dict[str, Any]) -> str:
    return (f"/ui/documents/{int(source['collection_id'])}/documents/{int(source['document_id'])}"
            f"#passage-{int(source['chunk'])}")


async def _events(turn: Turn, visitor: Visitor) -> AsyncIterator[bytes]:
    conversation = turn.conversation
    failure: str | None = None
    try:
        yield _line({"type": "conversation", "id": conversation.id, "title": conversation.title,
                     "url": f"/ui/chat/{conversation.id}"})
        if turn.sources is not None:
            yield _line({"type": "sources", "sources": [_linked(source) for source in turn.sources]})
        rendered = time.monotonic()
        async with aclosing(turn.text()) as pieces:  # cancelled when the browser leaves: closing stops the model
            async for piece in pieces:
                event: Json = {"type": "delta", "text": piece}
                if time.monotonic() - rendered >= HTML_EVERY_S:
                    event["html"] = markdown.to_html(turn.content)
                    rendered = time.monotonic()
                yield _line(event)
    except SocleError as exc:
        failure = french(exc)
    except Exception:
        log.exception("chat stream failed")
        failure = "La réponse a été interrompue par une erreur."
    finally:  # ended, failed or stopped: what was generated is kept
        await turn.close()
    if failure is not None:
        yield _line({"type": "error", "message": failure})
        return
    saved = turn.answer
    rating = "" if saved is None else TEMPLATES.get_template("_avis.html").render(
        visitor=visitor, conversation=conversation, message=saved)
    yield _line({"type": "done", "html": markdown.to_html(turn.content), "rating_html": rating,
                 "extraits": extractive.is_extracts(turn.content),
                 "message": saved.id if saved else None, "question": turn.question.id})


def chat_models(request: Request, visitor: Visitor) -> list[ModelChoice]:
    """The chat models this person may use, with their cards and whether each can answer now: what the
    picker shows, read in this one place."""
    if not (visitor.principal.can(Permission.MODELS_USE) and visitor.principal.can(Permission.MODELS_READ)):
        return []
    inference = platform(request).inference
    assert inference is not None, "inference is started in the app's lifespan"
    return [ModelChoice(m.id, m.config.model_card, m.available) for m in inference.list_models(visitor.principal)
            if m.config.type == "chat"]


async def _render(request: Request, visitor: Visitor, *, mode: Literal["chat", "documents"],
                  conversation: Conversation | None = None, shown: list[Shown] | None = None,
                  search: str | None = None) -> Response:
    p = platform(request)
    choices = chat_models(request, visitor)
    models = [choice.id for choice in choices]
    available = [choice.id for choice in choices if choice.available]
    collections = await p.collections.list(visitor.principal, limit=1000) if mode == "documents" else []
    searched = " ".join((search or "").split())
    conversations = (await p.conversations.search(visitor.principal, searched, limit=200) if searched
                     else await p.conversations.list(visitor.principal, limit=200))
    if conversation is not None:
        title = conversation.title
    else:
        title = "Interroger mes documents" if mode == "documents" else "Nouvelle conversation"
    site = site_of(request)
    wanted = [conversation.model] if conversation is not None else []
    wanted += [site.default_model] if site is not None and site.default_model else []
    chosen = next((model for model in wanted if model in available), available[0] if available else None)
    shown = shown or []
    return page(request, "chat.html", visitor, title=title, mode=mode, models=models,
                choices=choices, chosen=chosen, collections=collections, searched=searched,
                conversations=conversations, conversation=conversation, shown=shown,
                messages=[item.message for item in shown], last_answer=next(
                    (item.message.id for item in reversed(shown) if item.message.role == "assistant"), None),
                checked=set(conversation.collection_ids) if conversation else set(),
                section="/ui/interroger" if mode == "documents" else "/ui/chat", passage_url=passage_url)
