"""Files dropped into a conversation: a private collection of that conversation, made on its first file.

It is an ordinary private collection (its owner alone reads it; anyone else gets 404) that names its
conversation (``collections.conversation_id``): the conversation's turns search it besides the collections
checked, and it goes with the conversation (the foreign key cascades to its documents and passages; the
files are removed here). It is not listed among "Mes documents": it belongs to its conversation. Its files are
ingested by the same durable job as any upload.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.db.models import Collection, Conversation, Document, utcnow
from socle.errors import NotFound
from socle.identity.permissions import Permission, Principal, require
from socle.rag.documents import DocumentService

NAME = "Fichiers de la conversation"


class ConversationFiles:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], documents: DocumentService) -> None:
        self._sessions = sessions
        self._documents = documents

    async def collection_id(self, actor: Principal, conversation_id: int) -> int | None:
        """The conversation's own collection, if a file was ever dropped into it (None for another's)."""
        async with self._sessions() as session:
            return await session.scalar(_own(actor, conversation_id).with_only_columns(Collection.id))

    async def upload(self, actor: Principal, conversation_id: int, filename: str,
                     source: BinaryIO) -> tuple[Document, bool]:
        """Accept a file into the conversation's collection (made on the first file); the document, and
        whether it is new."""
        require(actor, Permission.COLLECTIONS_OWN)
        async with self._sessions() as session, session.begin():
            conversation = await session.scalar(select(Conversation).where(
                Conversation.id == conversation_id, Conversation.user_id == actor.user_id).with_for_update())
            if conversation is None:
                raise NotFound(f"Conversation {conversation_id} not found.", param="conversation_id")
            collection = await session.scalar(_own(actor, conversation_id))
            if collection is None:
                now = utcnow()
                collection = Collection(name=NAME, description=conversation.title[:2000], visibility="private",
                                        owner_id=actor.user_id, conversation_id=conversation_id, created_at=now,
                                        updated_at=now)
                session.add(collection)
                await session.flush()
            collection_id = collection.id
        return await self._documents.upload(actor, collection_id, filename, source)

    async def list(self, actor: Principal, conversation_id: int) -> list[Document]:
        """The conversation's files, the first dropped first (none for another's conversation)."""
        async with self._sessions() as session:
            return list(await session.scalars(
                select(Document).join(Collection, Collection.id == Document.collection_id)
                .where(Collection.conversation_id == conversation_id, Collection.owner_id == actor.user_id)
                .order_by(Document.id)))

    async def forget(self, actor: Principal, conversation_id: int) -> None:
        """Before a conversation is deleted: its collection, its documents' rows (by the cascade) and files."""
        async with self._sessions() as session, session.begin():
            collection = await session.scalar(_own(actor, conversation_id))
            if collection is None:
                return
            ids = list(await session.scalars(select(Document.id).where(Document.collection_id == collection.id)))
            await session.delete(collection)
        await asyncio.to_thread(_unlink, [self._documents.path(document_id) for document_id in ids])


def _own(actor: Principal, conversation_id: int) -> Select[tuple[Collection]]:
    return select(Collection).where(Collection.conversation_id == conversation_id,
                                    Collection.owner_id == actor.user_id)


def _unlink(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
