"""Retention: each kind of data is kept for the period the administrator set, then deleted by a durable job.

Every hour, every process that runs workers enqueues ``compliance.retention`` with the key
``retention:<day>`` unless that day's run is recorded: whichever process and however many, the day's run
happens once, and a run cut short by a crash is taken up again by the queue. A run deletes what is older
than its period: conversations unused, usage rows, uploaded documents (with their chunks, through the
chunk store, and files), web sessions expired, the audit trail's oldest entries (through the audit trail,
which records the pruning so that its chain still verifies), and each installed app's personal data (its
:class:`~socle.apps.base.PersonalData`, with its own period). A period of 0 keeps that kind; the audit
trail's is at least a year. The periods are the environment's until an administrator changes them in the site's
settings (:mod:`socle.site`), within :data:`BOUNDS`. Each run is recorded with its counts.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Select, delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from socle.apps.base import PersonalData
from socle.audit.service import AuditTrail
from socle.compliance.erasure import unlink_all
from socle.db.models import (
    Collection,
    Conversation,
    Document,
    LoginSession,
    RetentionRun,
    UsageRecord,
    utcnow,
)
from socle.db.scrub import scrub
from socle.identity.permissions import Permission, Principal, require
from socle.jobs.kinds import JobKind, Kind
from socle.jobs.queue import JobQueue
from socle.rag.documents import DocumentService
from socle.rag.stores import ChunkStore

log = logging.getLogger("socle.compliance")
KIND = "compliance.retention"
KINDS = ("conversations", "usage", "documents", "audit", "sessions")  # the platform's; then the apps'
_BATCH = 500
BOUNDS = {"conversations": (0, 3650), "usage": (0, 3650), "documents": (0, 3650), "audit": (365, 3650),
          "sessions": (0, 365)}
"""Days an administrator may choose for each kind (0: kept until deleted by hand): at most ten years, nothing
being kept longer than its purpose needs (RGPD art. 5.1.e); the audit trail at least a year, so that it outlives
what it proves (RGPD art. 32)."""
assert set(BOUNDS) == set(KINDS)


class ChosenPeriods(Protocol):
    """Where the administrators' periods are kept (the site's settings): days by kind, the platform's kinds."""

    async def retention_days(self) -> Mapping[str, int]: ...


@dataclass(frozen=True, slots=True)
class Periods:
    """Days each kind is kept (0: until deleted by hand): the platform's kinds from its settings, the installed
    apps' from theirs (``apps``, by kind)."""

    conversations: int
    usage: int
    documents: int
    audit: int
    sessions: int
    apps: Mapping[str, int] = field(default_factory=dict)

    @property
    def kinds(self) -> tuple[str, ...]:
        return (*KINDS, *self.apps)

    def of(self, kind: str) -> int:
        return self.apps[kind] if kind in self.apps else int(getattr(self, kind))


@dataclass(frozen=True, slots=True)
class Overview:
    periods: Periods
    last: RetentionRun | None


class Retention:
    def __init__(self, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], queue: JobQueue,
                 store: ChunkStore, documents: DocumentService, audit: AuditTrail, periods: Periods,
                 personal_data: Sequence[PersonalData], *, chosen: ChosenPeriods | None = None) -> None:
        self._engine = engine
        self.personal_data = personal_data
        self._sessions = sessions
        self._queue = queue
        self._store = store
        self._documents = documents
        self._audit = audit
        self.periods = replace(periods, apps={kind.kind: kind.retention_days for kind in personal_data})
        """The environment's periods (``SOCLE_RETENTION_*``, the apps' settings): the defaults of :meth:`current`."""
        self._chosen = chosen

    async def current(self) -> Periods:
        """The periods in force: the administrators' (the site's settings) over the environment's."""
        if self._chosen is None:
            return self.periods
        days = await self._chosen.retention_days()
        return replace(self.periods, **{kind: int(days[kind]) for kind in KINDS if kind in days})

    @property
    def kinds(self) -> list[JobKind]:
        return [Kind(KIND, self._handle)]

    async def schedule(self, now: datetime | None = None) -> int | None:
        """Enqueue the day's run unless it already ran; the job's id (None: already done)."""
        day = (now or utcnow()).astimezone(UTC).date().isoformat()
        async with self._sessions() as session:
            if await session.scalar(select(RetentionRun.id).where(RetentionRun.day == day).limit(1)) is not None:
                return None
        return await self._queue.enqueue(KIND, {"day": day}, dedupe_key=f"retention:{day}", max_attempts=3)

    async def keep_scheduled(self, *, every_s: float = 3600.0) -> None:
        """Run for ever (a task of the serving process): enqueue each day's run."""
        while True:
            try:
                await self.schedule()
            except Exception:
                log.exception("could not schedule the retention job")
            await asyncio.sleep(every_s)

    async def _handle(self, payload: dict[str, Any]) -> None:
        await self.run(str(payload.get("day") or utcnow().date().isoformat()))

    async def run(self, day: str, *, now: datetime | None = None) -> RetentionRun:
        """Delete everything past its period; record and return the run (idempotent: a rerun deletes nothing)."""
        started = now or utcnow()
        counts: dict[str, int] = {}
        periods = await self.current()
        deleters = {"conversations": self._old_conversations, "usage": self._old_usage,
                    "documents": self._old_documents, "audit": self._audit.prune, "sessions": self._old_sessions,
                    **{kind.kind: kind.expire for kind in self.personal_data}}
        for kind in periods.kinds:
            days = periods.of(kind)
            if days > 0:
                counts[kind] = await deleters[kind](started - timedelta(days=days))
        if any(counts.values()):
            await scrub(self._engine, ("conversations", "messages", "usage", "documents", "chunks", "login_sessions",
                                       "audit_events", *(t for kind in self.personal_data for t in kind.tables)))
        async with self._sessions() as session, session.begin():
            run = RetentionRun(day=day, started_at=started, finished_at=utcnow(), counts=counts)
            session.add(run)
        log.info("retention run of %s: %s", day, counts)
        return run

    async def overview(self, actor: Principal) -> Overview:
        """The periods and the last run, for the administrators' page (``users:admin``)."""
        require(actor, Permission.USERS_ADMIN)
        async with self._sessions() as session:
            last = await session.scalar(select(RetentionRun).order_by(RetentionRun.id.desc()).limit(1))
        return Overview(await self.current(), last)

    # ---- one method per kind: the rows older than ``cutoff`` ------------------------------------------

    async def _deleted(self, statement: Any) -> int:
        async with self._sessions() as session, session.begin():
            result = await session.execute(statement)
        return int(result.rowcount or 0)

    async def _old_conversations(self, cutoff: datetime) -> int:
        """With the files dropped into them: their collections' passages through the store, then their files."""
        old = select(Conversation.id).where(Conversation.updated_at < cutoff)
        async with self._sessions() as session, session.begin():
            collections = list(await session.scalars(select(Collection.id).where(Collection.conversation_id.in_(old))))
            files = list(await session.scalars(select(Document.id).where(Document.collection_id.in_(collections))))
            await self._store.erase(session, collection_ids=collections)
            result = await session.execute(delete(Conversation).where(Conversation.updated_at < cutoff))
        await asyncio.to_thread(unlink_all, [self._documents.path(document_id) for document_id in files])
        return int(result.rowcount or 0)

    async def _old_usage(self, cutoff: datetime) -> int:
        return await self._deleted(delete(UsageRecord).where(UsageRecord.created_at < cutoff))

    async def _old_sessions(self, cutoff: datetime) -> int:
        return await self._deleted(delete(LoginSession).where(LoginSession.expires_at < cutoff))

    async def _old_documents(self, cutoff: datetime) -> int:
        """A batch at a time: chunks through the store, the collections' counters, then the files."""
        total = 0
        query: Select[Any] = (select(Document.id, Document.collection_id, Document.chunks)
                              .where(Document.created_at < cutoff).order_by(Document.id).limit(_BATCH))
        while True:
            async with self._sessions() as session, session.begin():
                rows = (await session.execute(query)).all()
                if not rows:
                    return total
                ids = [row.id for row in rows]
                await self._store.erase(session, document_ids=ids)
                for collection_id in {row.collection_id for row in rows}:
                    mine = [row for row in rows if row.collection_id == collection_id]
                    await session.execute(update(Collection).where(Collection.id == collection_id).values(
                        documents=Collection.documents - len(mine),
                        chunks=Collection.chunks - sum(row.chunks for row in mine),
                        revision=Collection.revision + 1))
                await session.execute(delete(Document).where(Document.id.in_(ids)))
            await asyncio.to_thread(unlink_all, [self._documents.path(document_id) for document_id in ids])
            total += len(ids)
