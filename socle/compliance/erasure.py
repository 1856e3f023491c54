"""Erasure of a person (GDPR art. 17): deleting a user deletes everything the platform holds about them.

In one transaction: their conversations and messages; their collections — those they shared with a group
or published too, since they are the owner's data and nobody else can manage them — with their documents
and chunks, vectors and full-text entries (through the chunk store, which knows its engine's indexes);
what each installed app keeps of them (its :class:`~socle.apps.base.PersonalData`); their API keys and web
sessions; the quota rules that name them or one of their keys; and their account with its group
memberships; the models they fine-tuned (their names and cards hold their e-mail) with their trainings' folders
(adapters and checkpoints learnt from their examples). Their usage rows are kept
for accounting but pseudonymised: the user id becomes a random negative number that nothing maps back to
the person, the key id is cleared; the role and the group ids stay, since budgets and consumption are
accounted per group. Once committed, the uploads still waiting on disk are deleted and the database's files
are scrubbed of the deleted rows (``socle.db.scrub``).

Quota counters are keyed by rule id (and user id for role rules), hold numbers only, and run out with their
period; ids are never reused, so no later account inherits them.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from socle.apps.base import PersonalData
from socle.audit.service import Action, AuditTrail
from socle.db.models import (
    ApiKey,
    Collection,
    Conversation,
    Document,
    FineTuningJob,
    LoginSession,
    Quota,
    UsageRecord,
    User,
)
from socle.db.scrub import scrub
from socle.errors import InvalidRequest, NotFound
from socle.files.service import FileService
from socle.identity.permissions import Permission, Principal, require
from socle.identity.service import IdentityService
from socle.inference.catalogue_store import CatalogueStore
from socle.quotas.service import QuotaService
from socle.rag.documents import DocumentService
from socle.rag.stores import ChunkStore

log = logging.getLogger("socle.compliance")
# The tables whose deleted rows held the person's words (usage rows only change ids: not vacuumed, they are big).
ERASED_TABLES = ("users", "api_keys", "login_sessions", "conversations", "messages", "collections", "documents",
                 "chunks", "files", "catalogue_models")  # and the tables of the apps' personal data


@dataclass(slots=True)
class Erased:
    """What an erasure removed, by kind (counts only: the record of an erasure names no one)."""

    user_id: int
    conversations: int = 0
    collections: int = 0
    documents: int = 0
    chunks: int = 0
    uploaded_files: int = 0  # of /v1/files
    fine_tuned_models: int = 0
    api_keys: int = 0
    sessions: int = 0
    quotas: int = 0
    usage_pseudonymised: int = 0
    apps: dict[str, int] = field(default_factory=dict)  # what the apps' personal data counted, by name
    files: list[Path] = field(default_factory=list, repr=False)
    folders: list[Path] = field(default_factory=list, repr=False)  # fine-tuning jobs' working folders

    def counts(self) -> dict[str, int]:
        return {**{name: getattr(self, name) for name in ("conversations", "collections", "documents", "chunks",
                                                          "uploaded_files", "fine_tuned_models")},
                **self.apps, **{name: getattr(self, name) for name in (
                    "api_keys", "sessions", "quotas", "usage_pseudonymised")}}


class ErasureService:
    def __init__(self, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], store: ChunkStore,
                 documents: DocumentService, identity: IdentityService, quotas: QuotaService,
                 audit: AuditTrail, personal_data: Sequence[PersonalData], *, files: FileService,
                 catalogue: CatalogueStore, training_folder: Callable[[int], Path]) -> None:
        self._engine = engine
        self._training_folder = training_folder
        self._catalogue = catalogue
        self._files = files
        self._personal_data = personal_data
        self._tables = (*ERASED_TABLES, *(table for kind in personal_data for table in kind.tables))
        self._sessions = sessions
        self._store = store
        self._documents = documents
        self._identity = identity
        self._quotas = quotas
        self._audit = audit

    async def erase_user(self, actor: Principal, user_id: int) -> Erased:
        """Delete a user and everything about them (``users:admin``; never one's own account)."""
        require(actor, Permission.USERS_ADMIN)
        if actor.user_id == user_id:
            raise InvalidRequest("You cannot delete your own account.", param="user_id")
        async with self._sessions() as session, session.begin():
            # Locked: on PostgreSQL a row naming the user (an upload, a batch's results) written meanwhile waits
            # for this transaction and then fails, so no file is left on disk with no row to find it by.
            if await session.scalar(select(User.id).where(User.id == user_id).with_for_update()) is None:
                raise NotFound(f"User {user_id} not found.", param="user_id")
            erased = await self._erase(session, user_id)
            await self._audit.record_in(session, Action.USER_ERASED, actor=actor, target=("user", user_id),
                                        details=erased.counts())  # ids and counts: the record names no one
        if erased.fine_tuned_models:
            await self._catalogue.applied()  # served no more here at once, elsewhere on the next read
        await asyncio.to_thread(unlink_all, erased.files)  # only once the rows are gone for good
        await asyncio.to_thread(remove_all, erased.folders)
        await scrub(self._engine, self._tables)
        self._identity.forget_all()
        self._quotas.forget()
        log.info("user %d erased: %s", user_id, erased.counts())
        return erased

    async def _erase(self, session: AsyncSession, user_id: int) -> Erased:
        erased = Erased(user_id)
        collection_ids = list(await session.scalars(select(Collection.id).where(Collection.owner_id == user_id)))
        document_ids = list(await session.scalars(select(Document.id)
                                                  .where(Document.collection_id.in_(collection_ids))))
        key_ids = list(await session.scalars(select(ApiKey.id).where(ApiKey.user_id == user_id)))
        erased.files = [self._documents.path(document_id) for document_id in document_ids]
        erased.documents = len(document_ids)
        file_ids = await self._files.owned_ids(session, user_id)  # their rows go with the user (cascade)
        erased.files += [self._files.path(file_id) for file_id in file_ids]
        erased.uploaded_files = len(file_ids)
        erased.fine_tuned_models = await self._catalogue.remove_owned_in(session, user_id)
        job_ids = await session.scalars(select(FineTuningJob.id).where(FineTuningJob.owner_id == user_id))
        erased.folders = [self._training_folder(job_id) for job_id in job_ids]  # the rows go with the user
        erased.chunks = await self._store.erase(session, collection_ids=collection_ids)
        erased.collections = await _count(session, delete(Collection).where(Collection.id.in_(collection_ids)))
        erased.conversations = await _count(session, delete(Conversation).where(Conversation.user_id == user_id))
        for kind in self._personal_data:
            erased.apps.update(await kind.erase(session, user_id))
        erased.quotas = await _count(session, delete(Quota).where(or_(
            and_(Quota.scope == "user", Quota.subject == str(user_id)),
            and_(Quota.scope == "key", Quota.subject.in_([str(key_id) for key_id in key_ids])))))
        erased.sessions = await _count(session, delete(LoginSession).where(LoginSession.user_id == user_id))
        erased.api_keys = await _count(session, delete(ApiKey).where(ApiKey.user_id == user_id))
        erased.usage_pseudonymised = await _count(session, update(UsageRecord)
                                                  .where(UsageRecord.user_id == user_id)
                                                  .values(user_id=pseudonym(), key_id=None))
        user = await session.get(User, user_id)
        await session.delete(user)  # and its group memberships
        await session.flush()
        return erased


def unlink_all(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def remove_all(folders: list[Path]) -> None:
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def pseudonym() -> int:
    """A usage row's user id after its person was erased: negative (no account has one) and random (no
    mapping back is kept); within 32 bits, as any id column holds."""
    return -(secrets.randbelow(2**31 - 2) + 1)


async def _count(session: AsyncSession, statement: object) -> int:
    result = await session.execute(statement)  # type: ignore[call-overload]
    return int(result.rowcount or 0)

