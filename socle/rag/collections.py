"""Collections: who may read them is a condition of every query (``readable``), never a filter applied
to results afterwards; a collection the caller may not read answers 404, as if it did not exist.

- ``private``: its owner only; ``group``: the members of its group (the owner must be one to share it);
  ``public``: every user (publishing needs ``collections:publish``).
- Only the owner changes or deletes a collection. An owner who has since left the group it is shared with (or
  lost the right to publish) keeps it in hand: they rename it, take it back to private, or delete it; the
  audience stays as it was until they change it, and they cannot share it anew with a group they are not in.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.audit.service import Action, AuditTrail
from socle.db.models import Collection, User, utcnow
from socle.errors import InvalidRequest, NotFound
from socle.identity.names import readable_name
from socle.identity.permissions import Permission, Principal, require

VISIBILITIES = ("private", "group", "public")


def readable(principal: Principal) -> ColumnElement[bool]:
    """The collections ``principal`` may read, as a SQL condition (for collections, documents, chunks)."""
    in_groups = (and_(Collection.visibility == "group", Collection.group_id.in_(sorted(principal.group_ids)))
                 if principal.group_ids else false())
    return or_(Collection.owner_id == principal.user_id, Collection.visibility == "public", in_groups)


class CollectionService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], audit: AuditTrail) -> None:
        self._sessions = sessions
        self._audit = audit

    async def create(self, actor: Principal, *, name: str, description: str = "", visibility: str = "private",
                     group_id: int | None = None) -> Collection:
        require(actor, Permission.COLLECTIONS_OWN)
        self._check_visibility(actor, visibility, group_id)
        collection = Collection(name=readable_name(name), description=description, visibility=visibility,
                                group_id=group_id if visibility == "group" else None, owner_id=actor.user_id,
                                created_at=utcnow(), updated_at=utcnow())
        async with self._sessions() as session, session.begin():
            session.add(collection)
            if visibility == "public":
                await session.flush()
                await self._audit.record_in(session, Action.COLLECTION_PUBLISHED, actor=actor,
                                            target=("collection", collection.id))
        return collection

    async def list(self, actor: Principal, *, limit: int = 100, offset: int = 0) -> list[Collection]:
        query = (select(Collection).where(readable(actor), Collection.conversation_id.is_(None))  # not a chat's
                 .order_by(Collection.id).limit(limit).offset(offset))
        async with self._sessions() as session:
            return list(await session.scalars(query))

    async def get(self, actor: Principal, collection_id: int) -> Collection:
        async with self._sessions() as session:
            return await self.readable_one(session, actor, collection_id)

    async def update(self, actor: Principal, collection_id: int, **changes: Any) -> Collection:
        async with self._sessions() as session, session.begin():
            collection = await self.writable(session, actor, collection_id)
            visibility = changes.get("visibility", collection.visibility)
            group_id = changes.get("group_id", collection.group_id)
            if (visibility, group_id) != (collection.visibility, collection.group_id):
                self._check_visibility(actor, visibility, group_id)  # only a new audience needs the right to it
            if changes.get("name") is not None:
                collection.name = readable_name(changes["name"])
            if changes.get("description") is not None:
                collection.description = changes["description"]
            if "public" in (visibility, collection.visibility) and visibility != collection.visibility:
                action = Action.COLLECTION_PUBLISHED if visibility == "public" else Action.COLLECTION_UNPUBLISHED
                await self._audit.record_in(session, action, actor=actor, target=("collection", collection_id),
                                            details={"visibility": visibility})
            collection.visibility = visibility
            collection.group_id = group_id if visibility == "group" else None
            collection.updated_at = utcnow()
        return collection

    async def owners(self, collections: list[Collection]) -> dict[int, str]:
        """The names of these collections' owners (the Albert API's ``owner``), by user id: a name, never an
        email (a public collection's readers are everyone); an owner without a name is shown by their id."""
        ids = sorted({collection.owner_id for collection in collections})
        if not ids:
            return {}
        async with self._sessions() as session:
            names = dict((await session.execute(select(User.id, User.name).where(User.id.in_(ids)))).all())
        return {user_id: names.get(user_id) or f"user-{user_id}" for user_id in ids}

    async def delete(self, actor: Principal, collection_id: int) -> None:
        async with self._sessions() as session, session.begin():
            await session.delete(await self.writable(session, actor, collection_id))

    @staticmethod
    async def readable_one(session: AsyncSession, actor: Principal, collection_id: int) -> Collection:
        collection = await session.scalar(select(Collection).where(Collection.id == collection_id, readable(actor)))
        if collection is None:
            raise NotFound(f"Collection {collection_id} not found.", param="collection_id")
        return collection

    @classmethod
    async def writable(cls, session: AsyncSession, actor: Principal, collection_id: int) -> Collection:
        """A collection the caller may change (its owner, or an admin who can read it); others' 404 or 403."""
        collection = await cls.readable_one(session, actor, collection_id)
        if collection.owner_id != actor.user_id:
            require(actor, Permission.COLLECTIONS_PUBLISH)  # a reader who is not the owner: only an admin edits
        return collection

    @staticmethod
    def _check_visibility(actor: Principal, visibility: str, group_id: int | None) -> None:
        if visibility not in VISIBILITIES:
            raise InvalidRequest(f"visibility must be one of {', '.join(VISIBILITIES)}.", param="visibility")
        if visibility == "group":
            if group_id is None:
                raise InvalidRequest("A group collection names its group_id.", param="group_id")
            if group_id not in actor.group_ids:
                raise NotFound(f"Group {group_id} not found among your groups.", param="group_id")
        if visibility == "public":
            require(actor, Permission.COLLECTIONS_PUBLISH)
