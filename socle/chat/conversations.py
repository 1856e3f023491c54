"""Conversations and their messages, each its owner's alone.

A conversation is a tree: each message names the one it follows (``parent_id``). A question edited and sent
again, or an answer written again, is a new version next to the earlier one, which stays reachable; the
conversation shows one branch, the one ending at its ``leaf_id``, and only that branch is given to the model.

Ownership is a condition of every query (``Conversation.user_id == actor.user_id``): another user's
conversation or message answers 404 as if it did not exist, admins included — a conversation is private
correspondence, and the platform's dashboards only ever read ratings in aggregate (:meth:`ratings`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, case, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.db.models import Conversation, Message, utcnow
from socle.errors import InvalidRequest, NotFound
from socle.identity.permissions import Permission, Principal
from socle.rag.search import Result

Role = Literal["user", "assistant"]
TITLE_LENGTH = 200
COMMENT_LENGTH = 2000
EXCERPT_LENGTH = 1000  # of a source's passage, as stored and shown


@dataclass(frozen=True, slots=True)
class RatingCount:
    """Ratings given on one day to one model's answers."""

    day: str  # ISO date, UTC
    model: str
    up: int
    down: int


class Leaf:
    """The default place of a new message: after the last message of the branch shown."""


LEAF = Leaf()
SEARCH_LENGTH = 200
BRANCH_LIMIT = 10_000  # messages of one conversation read to find its branches


@dataclass(frozen=True, slots=True)
class Shown:
    """A message of the branch shown, with its place among its versions (the messages that follow the same
    message): "2/3", and the versions before and after it, to switch to."""

    message: Message
    version: int
    versions: int
    previous: int | None
    next: int | None


def title_of(text: str) -> str:
    """A conversation's first title: the start of its first question, on one line."""
    line = " ".join(text.split())
    return line if len(line) <= 80 else line[:79].rstrip() + "…"


def sources_of(results: Sequence[Result]) -> list[dict[str, Any]]:
    """What an answer about documents keeps of the excerpts it was given: enough to show and link each one
    after its document is gone (the link then says so)."""
    return [{"number": number, "document": result.document_name, "document_id": result.chunk.document_id,
             "collection_id": result.chunk.collection_id, "chunk": result.chunk.idx, "page": result.chunk.page,
             "excerpt": _shortened(result.chunk.text, EXCERPT_LENGTH)}
            for number, result in enumerate(results, start=1)]


def _shortened(text: str, length: int) -> str:
    return text if len(text) <= length else text[:length - 1].rstrip() + "…"


def _owned(actor: Principal) -> ColumnElement[bool]:
    return Conversation.user_id == actor.user_id


class ConversationService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def start(self, actor: Principal, *, title: str, model: str,
                    collection_ids: Sequence[int] = ()) -> Conversation:
        now = utcnow()
        conversation = Conversation(user_id=actor.user_id, title=_title(title), model=model,
                                    collection_ids=sorted(set(collection_ids)), created_at=now, updated_at=now)
        async with self._sessions() as session, session.begin():
            session.add(conversation)
        return conversation

    async def list(self, actor: Principal, *, limit: int = 100, offset: int = 0) -> list[Conversation]:
        """Mine, the most recently continued first."""
        query = (select(Conversation).where(_owned(actor))
                 .order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(limit).offset(offset))
        async with self._sessions() as session:
            return list(await session.scalars(query))

    async def get(self, actor: Principal, conversation_id: int) -> Conversation:
        async with self._sessions() as session:
            return await _conversation(session, actor, conversation_id)

    async def search(self, actor: Principal, text: str, *, limit: int = 100) -> list[Conversation]:
        """Mine whose title or one of whose messages contains ``text`` (case aside), the most recent first."""
        words = " ".join(text.split())[:SEARCH_LENGTH]
        if not words:
            return await self.list(actor, limit=limit)
        in_messages = (select(Message.conversation_id).join(Conversation, Conversation.id == Message.conversation_id)
                       .where(_owned(actor), Message.content.icontains(words, autoescape=True)))
        query = (select(Conversation).where(_owned(actor), or_(Conversation.title.icontains(words, autoescape=True),
                                                               Conversation.id.in_(in_messages)))
                 .order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(limit))
        async with self._sessions() as session:
            return list(await session.scalars(query))

    async def messages(self, actor: Principal, conversation_id: int, *,
                       limit: int = 1000) -> tuple[Conversation, list[Message]]:
        """A conversation and the last ``limit`` messages of the branch it shows, oldest first."""
        conversation, shown = await self.branch(actor, conversation_id)
        return conversation, [item.message for item in shown[-limit:]]

    async def branch(self, actor: Principal, conversation_id: int) -> tuple[Conversation, list[Shown]]:
        """A conversation and the branch it shows, oldest first, each message with its versions."""
        async with self._sessions() as session:
            conversation = await _conversation(session, actor, conversation_id)
            rows = await _all_messages(session, actor, conversation.id)
        versions: dict[int | None, list[int]] = {}
        for row in rows:
            versions.setdefault(row.parent_id, []).append(row.id)
        shown = []
        for message in _branch(rows, conversation.leaf_id):
            siblings = versions[message.parent_id]
            at = siblings.index(message.id)
            shown.append(Shown(message, at + 1, len(siblings), siblings[at - 1] if at else None,
                               siblings[at + 1] if at + 1 < len(siblings) else None))
        return conversation, shown

    async def message(self, actor: Principal, conversation_id: int, message_id: int) -> Message:
        """One message of my conversation."""
        async with self._sessions() as session:
            message = await session.scalar(
                select(Message).join(Conversation, Conversation.id == Message.conversation_id)
                .where(Message.id == message_id, Message.conversation_id == conversation_id, _owned(actor)))
        if message is None:
            raise NotFound(f"Message {message_id} not found.", param="message_id")
        return message

    async def switch(self, actor: Principal, conversation_id: int, message_id: int) -> Conversation:
        """Show the branch through ``message_id``: down to its latest answer, taking the newest version of
        each message below it."""
        async with self._sessions() as session, session.begin():
            conversation = await _conversation(session, actor, conversation_id)
            rows = await _all_messages(session, actor, conversation.id)
            newest: dict[int | None, int] = {}
            for row in rows:  # oldest first: the last child seen is the newest
                newest[row.parent_id] = row.id
            if message_id not in {row.id for row in rows}:
                raise NotFound(f"Message {message_id} not found.", param="message_id")
            leaf = message_id
            while leaf in newest:
                leaf = newest[leaf]
            conversation.leaf_id = leaf
        return conversation

    async def history(self, actor: Principal, conversation_id: int, *, max_chars: int,
                      upto: int | Leaf = LEAF) -> list[dict[str, str]]:
        """The latest turns of the branch ending at ``upto`` (by default the branch shown) that fit in
        ``max_chars``, as a chat request's messages: what the model is given to continue the conversation
        (a small model's context is short)."""
        async with self._sessions() as session:
            conversation = await _conversation(session, actor, conversation_id)
            rows = await _all_messages(session, actor, conversation.id)
        messages = _branch(rows, conversation.leaf_id if isinstance(upto, Leaf) else upto)
        kept: list[dict[str, str]] = []
        used = 0
        for message in reversed(messages):
            if not message.content:
                continue
            if used + len(message.content) > max_chars and kept:
                break
            kept.append({"role": message.role, "content": message.content})
            used += len(message.content)
        while kept and kept[-1]["role"] != "user":  # a chat starts with the user's turn
            kept.pop()
        return kept[::-1]

    async def add(self, actor: Principal, conversation_id: int, *, role: Role, content: str,
                  model: str | None = None, sources: list[dict[str, Any]] | None = None,
                  collection_ids: Sequence[int] | None = None, parent_id: int | None | Leaf = LEAF) -> Message:
        """Add a message after ``parent_id`` (by default the last one shown; None: a new first question), and
        show its branch; the conversation moves to the top of its owner's list, and remembers the model and
        the collections of its latest turn."""
        if role not in ("user", "assistant"):
            raise InvalidRequest("role must be user or assistant.", param="role")
        now = utcnow()
        message = Message(role=role, content=content, model=model, sources=sources, created_at=now)
        async with self._sessions() as session, session.begin():
            conversation = await _conversation(session, actor, conversation_id)
            if isinstance(parent_id, Leaf):
                message.parent_id = conversation.leaf_id
            elif parent_id is not None:
                parent = await session.scalar(select(Message.id).where(Message.id == parent_id,
                                                                       Message.conversation_id == conversation.id))
                if parent is None:
                    raise NotFound(f"Message {parent_id} not found.", param="parent_id")
                message.parent_id = parent_id
            conversation.updated_at = now
            if model:
                conversation.model = model
            if collection_ids is not None:
                conversation.collection_ids = sorted(set(collection_ids))
            message.conversation_id = conversation.id
            session.add(message)
            await session.flush()
            conversation.leaf_id = message.id
        return message

    async def rename(self, actor: Principal, conversation_id: int, title: str) -> Conversation:
        async with self._sessions() as session, session.begin():
            conversation = await _conversation(session, actor, conversation_id)
            conversation.title = _title(title)
        return conversation

    async def delete(self, actor: Principal, conversation_id: int) -> None:
        async with self._sessions() as session, session.begin():
            conversation = await _conversation(session, actor, conversation_id)
            await session.execute(delete(Message).where(Message.conversation_id == conversation.id))
            await session.delete(conversation)

    async def rate(self, actor: Principal, message_id: int, rating: int) -> Message:
        """Thumbs up (1) or down (-1) on one of my assistant's answers."""
        if rating not in (-1, 1):
            raise InvalidRequest("rating must be 1 or -1.", param="rating")
        async with self._sessions() as session, session.begin():
            message = await _answer(session, actor, message_id)
            message.rating, message.rated_at = rating, utcnow()
        return message

    async def comment(self, actor: Principal, message_id: int, comment: str) -> Message:
        """A comment on one of my assistant's answers (an empty one removes it)."""
        text = comment.strip()
        if len(text) > COMMENT_LENGTH:
            raise InvalidRequest(f"A comment holds at most {COMMENT_LENGTH} characters.", param="comment")
        async with self._sessions() as session, session.begin():
            message = await _answer(session, actor, message_id)
            message.rating_comment, message.rated_at = text or None, utcnow()
        return message

    async def ratings(self, actor: Principal, *, since: datetime | None = None,
                      until: datetime | None = None) -> list[RatingCount]:
        """Thumbs up and down per day (of the rating) and model: the qualitative impact indicator. Across the
        platform with ``usage:read_all``, else one's own; counts only, never the messages."""
        day = func.date(Message.rated_at)
        query = (select(day.label("day"), Message.model,
                        func.sum(case((Message.rating == 1, 1), else_=0)).label("up"),
                        func.sum(case((Message.rating == -1, 1), else_=0)).label("down"))
                 .where(Message.rating.is_not(None), Message.rated_at.is_not(None))
                 .group_by(day, Message.model).order_by(day, Message.model))
        if not actor.can(Permission.USAGE_READ_ALL):
            query = query.join(Conversation, Conversation.id == Message.conversation_id).where(_owned(actor))
        if since is not None:
            query = query.where(Message.rated_at >= since)
        if until is not None:
            query = query.where(Message.rated_at < until)
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [RatingCount(row.day.isoformat() if isinstance(row.day, date) else str(row.day), row.model or "",
                            int(row.up), int(row.down)) for row in rows]


def _title(title: str) -> str:
    text = " ".join(title.split())
    if not text:
        raise InvalidRequest("A conversation needs a title.", param="title")
    if len(text) > TITLE_LENGTH:
        raise InvalidRequest(f"A title holds at most {TITLE_LENGTH} characters.", param="title")
    return text


async def _conversation(session: AsyncSession, actor: Principal, conversation_id: int) -> Conversation:
    conversation = await session.scalar(select(Conversation).where(Conversation.id == conversation_id,
                                                                   _owned(actor)))
    if conversation is None:
        raise NotFound(f"Conversation {conversation_id} not found.", param="conversation_id")
    return conversation


async def _all_messages(session: AsyncSession, actor: Principal, conversation_id: int) -> list[Message]:
    """Every message of my conversation, oldest first."""
    return list(await session.scalars(
        select(Message).join(Conversation, Conversation.id == Message.conversation_id)
        .where(Message.conversation_id == conversation_id, _owned(actor)).order_by(Message.id).limit(BRANCH_LIMIT)))


def _branch(rows: Sequence[Message], leaf_id: int | None) -> list[Message]:
    """The messages from the first question down to ``leaf_id``, oldest first (down to the newest message
    when ``leaf_id`` is unknown)."""
    by_id = {row.id: row for row in rows}
    current = by_id[leaf_id] if leaf_id in by_id else (rows[-1] if rows else None)
    chain: list[Message] = []
    while current is not None and len(chain) < len(rows):
        chain.append(current)
        current = by_id.get(current.parent_id) if current.parent_id is not None else None
    return chain[::-1]


async def _answer(session: AsyncSession, actor: Principal, message_id: int) -> Message:
    """One of my conversations' assistant messages (only answers are rated)."""
    message = await session.scalar(select(Message).join(Conversation, Conversation.id == Message.conversation_id)
                                   .where(Message.id == message_id, Message.role == "assistant", _owned(actor)))
    if message is None:
        raise NotFound(f"Message {message_id} not found.", param="message_id")
    return message
