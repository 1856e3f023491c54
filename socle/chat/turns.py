"""A chat turn: one question in a conversation, and the answer the model streams back, kept with it.

The history the model is given is read from the database, never taken from the caller: a turn names only its
conversation and its new question. A question about documents (``collections``) is grounded in the excerpts
found there, which the answer keeps as its sources. Errors before the model's first token are raised by
:meth:`ChatTurns.take`, before anything is saved (the caller can still answer with a plain error); the question
is saved once the model has taken it. The answer is saved when its stream ends, fails or is stopped (the caller
left): what was generated is kept. Both faces use it: the web UI (NDJSON for its pages) and the API (SSE).

A demonstration model (its card says so) does not write answers about documents unless asked (``generate``):
it would loop and invent figures; the answer is then the passages found, their answering sentences highlighted
(:mod:`socle.rag.extractive`). Files dropped into the conversation (:mod:`socle.rag.conversation_files`) are
searched by its turns besides the collections named. Every generated answer is watched for loops
(:mod:`socle.chat.repetition`): one that loops is stopped and cut where it began repeating itself.
"""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

import anyio

from socle.chat.conversations import LEAF, ConversationService, Leaf, sources_of, title_of
from socle.chat.repetition import LoopGuard
from socle.db.models import Conversation, Message
from socle.endpoints import Endpoint, Json
from socle.errors import InvalidRequest, SocleError
from socle.identity.permissions import Permission, Principal, require
from socle.inference.service import InferenceService
from socle.rag import extractive
from socle.rag.answering import Answering, SearchOption
from socle.rag.conversation_files import ConversationFiles
from socle.rag.search import Result

log = logging.getLogger("socle.chat")

HISTORY_CHARS = 12_000  # of earlier turns given to the model: a small model's context is short
SOURCES_K = 5  # excerpts an answer about documents is given
LOOPED = "\n\n*Réponse arrêtée : le modèle se répétait.*"


class Turn:
    """A turn under way: its conversation, its saved question, the excerpts it is grounded in (None for a plain
    chat), and the answer as the model writes it (:meth:`text`). :meth:`close` ends it; reading :meth:`text`
    to its end, or failing, or being closed early closes it too."""

    def __init__(self, conversations: ConversationService, principal: Principal, conversation: Conversation,
                 question: Message, model: str, sources: list[dict[str, Any]] | None,
                 chunks: AsyncIterator[Json]) -> None:
        self.conversation = conversation
        self.question = question
        self.model = model
        self.sources = sources
        self.answer: Message | None = None
        """The saved answer, once the turn is closed (None when nothing was generated and nothing found)."""
        self._conversations = conversations
        self._principal = principal
        self._chunks = chunks
        self._parts: list[str] = []
        self._guard = LoopGuard()
        self.looped = False
        """Whether the model looped: the answer was then stopped and cut where the repetition began."""
        self._completed = False
        self._closed = False

    @property
    def content(self) -> str:
        """The answer so far (the whole of it once the stream has ended)."""
        return "".join(self._parts)

    async def text(self) -> AsyncIterator[str]:
        """The answer's text, piece by piece as the model writes it. A backend failure is raised after what
        was generated is saved; closing this early (the caller left) stops the model and saves it too."""
        try:
            async with aclosing(self._chunks) as chunks:
                async for chunk in chunks:
                    for choice in chunk.get("choices") or ():
                        piece = (choice.get("delta") or {}).get("content")
                        if not piece:
                            continue
                        cut = self._guard.feed(piece)
                        if cut is not None:  # closing the stream (below) stops the model
                            self.looped = True
                            self._parts = [self._guard.text[:cut].rstrip(), LOOPED]
                            yield LOOPED
                            break
                        self._parts.append(piece)
                        yield piece
                    if self.looped:
                        break
            self._completed = True
        finally:
            await self.close()

    async def complete(self) -> Message:
        """The whole answer, saved: for a caller that does not stream."""
        async with aclosing(self.text()) as pieces:
            async for _ in pieces:
                pass
        if self.answer is None:  # saving it failed (logged)
            raise SocleError("The answer was written but could not be saved.")
        return self.answer

    async def close(self) -> Message | None:
        """Stop the model if it is still writing and save what it wrote: once, and shielded from cancellation
        (a caller that leaves cancels the task that runs this). An answer that ran to its end is saved even if
        empty; one stopped or failed before any text, only when it had sources to show."""
        with anyio.CancelScope(shield=True):
            if self._closed:
                return self.answer
            self._closed = True
            try:
                await self._chunks.aclose()
            except Exception:
                log.exception("closing an answer's stream failed")
            if self._parts or self.sources or self._completed:
                try:
                    self.answer = await self._conversations.add(
                        self._principal, self.conversation.id, role="assistant", content=self.content,
                        model=self.model, sources=self.sources, parent_id=self.question.id)
                except Exception:
                    log.exception("saving an answer failed")
        return self.answer


class ChatTurns:
    """Takes turns in conversations: the history, the grounding on documents, the model's stream, and saving
    both sides of the turn."""

    def __init__(self, conversations: ConversationService, inference: InferenceService, answering: Answering,
                 files: ConversationFiles, *, history_chars: int = HISTORY_CHARS,
                 sources_k: int = SOURCES_K) -> None:
        self._conversations = conversations
        self._files = files
        self._inference = inference
        self._answering = answering
        self._history_chars = history_chars
        self._sources_k = sources_k

    async def start(self, principal: Principal, *, title: str, model: str) -> Conversation:
        """An empty conversation with a chat model the caller may use (named by its canonical id)."""
        require(principal, Permission.MODELS_USE)
        served = self._inference.visible(principal, model)  # a model kept for others is unknown here too
        if served.config.type != "chat":
            raise InvalidRequest(f"The model '{served.id}' is a {served.config.type} model, not a chat model.",
                                 param="model", code="model_not_supported")
        return await self._conversations.start(principal, title=title, model=served.id)

    async def take(self, principal: Principal, content: str, *, model: str | None = None,
                   conversation_id: int | None = None, collections: Sequence[int] = (),
                   edit: int | None = None, again: int | None = None, generate: bool = False) -> Turn:
        """Open a turn: ``content`` asked of ``model`` (by default the conversation's), in conversation
        ``conversation_id`` (a new one, titled after the question, when None), grounded in ``collections``
        when any. ``edit`` names an earlier question that ``content`` is a new version of (a new branch from
        the same place); ``again`` names an answer to write again (a new version of it, for the same question:
        ``content`` is then ignored). A demonstration model answers a question about documents by extracts
        unless ``generate``. Raises before saving anything if the model cannot start answering."""
        existing = (await self._conversations.get(principal, conversation_id) if conversation_id is not None
                    else None)
        if (edit is not None or again is not None) and existing is None:
            raise InvalidRequest("Editing a message needs its conversation.", param="conversation")
        asked: Message | None = None  # the question answered again
        parent: int | None | Leaf = LEAF
        if again is not None and existing is not None:
            answer = await self._conversations.message(principal, existing.id, again)
            if answer.role != "assistant" or answer.parent_id is None:
                raise InvalidRequest("Only an answer can be written again.", param="again")
            asked = await self._conversations.message(principal, existing.id, answer.parent_id)
            content, parent = asked.content, asked.parent_id
        elif edit is not None and existing is not None:
            edited = await self._conversations.message(principal, existing.id, edit)
            if edited.role != "user":
                raise InvalidRequest("Only a question can be edited.", param="edit")
            parent = edited.parent_id
        if not content.strip():
            raise InvalidRequest("The message is empty.", param="content", code="empty_message")
        model = model or (existing.model if existing is not None else None)
        if not model:
            raise InvalidRequest("A new conversation needs a model.", param="model")
        history = ([] if existing is None or parent is None else
                   await self._conversations.history(principal, existing.id, max_chars=self._history_chars,
                                                     upto=parent))
        body: Json = {"model": model, "messages": [*history, {"role": "user", "content": content}], "stream": True}
        sources: list[dict[str, Any]] | None = None
        own = await self._files.collection_id(principal, existing.id) if existing is not None else None
        searched = [*collections, *([own] if own is not None and own not in collections else [])]
        results: list[Result] = []
        if searched:
            body, results = await self._answering.ground(
                principal, body, SearchOption(collections=searched, k=self._sources_k))
            sources = sources_of(results)
        if searched and self._answering.by_extracts(principal, model, generate=generate):
            chunks: AsyncIterator[Json] = _written(extractive.answer(content, results))
        else:
            chunks = await self._inference.stream(principal, Endpoint.CHAT, body)  # fails before the first token
        try:  # the question is kept once the model has taken it
            conversation = existing or await self._conversations.start(
                principal, title=title_of(content), model=model, collection_ids=collections)
            question = asked or await self._conversations.add(
                principal, conversation.id, role="user", content=content, model=model,
                collection_ids=collections if existing is not None else None, parent_id=parent)
        except BaseException:
            await chunks.aclose()
            raise
        return Turn(self._conversations, principal, conversation, question, model, sources, chunks)

    async def delete(self, principal: Principal, conversation_id: int) -> None:
        """Delete a conversation of mine with the files dropped into it."""
        await self._conversations.get(principal, conversation_id)  # mine, or 404 before anything goes
        await self._files.forget(principal, conversation_id)
        await self._conversations.delete(principal, conversation_id)


async def _written(text: str) -> AsyncIterator[Json]:
    """An answer written by the platform itself, as the one chunk of a stream."""
    yield {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text},
                                                           "finish_reason": "stop"}]}
