"""A durable job queue over the relational store (SQLite or PostgreSQL): the embedded default.

A job is a row. A worker claims one by leasing it (``locked_until``) in a single UPDATE, keeps the
lease alive while it works, and marks it done or failed. A worker that dies (kill -9, power loss)
simply stops renewing: once the lease runs out another worker, or the same one after a restart,
claims the job again. Handlers must therefore be idempotent, which is also what makes a retry safe.
On PostgreSQL, concurrent claimers skip each other's rows (``FOR UPDATE SKIP LOCKED``); SQLite
serialises writers, which gives the same guarantee: a job is leased by one worker at a time.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, event, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.db.models import Job, utcnow
from socle.logs import request_id


@dataclass(frozen=True, slots=True)
class LeasedJob:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int  # this run included
    max_attempts: int
    request_id: str | None = None  # of the request that enqueued it: its logs carry it


@dataclass(frozen=True, slots=True)
class Backlog:
    """The jobs of one kind that should be running and are not."""

    kind: str
    waiting: int
    stalled: int  # of which waiting for longer than the bound
    oldest_since: datetime  # when the longest-waiting one became due


@dataclass(frozen=True, slots=True)
class KindStats:
    """The queue of one kind of job, as /metrics shows it."""

    kind: str
    queued: int  # waiting to run, now or later (a retry after a failure waits its backoff)
    running: int  # leased by a live worker
    waiting: int  # due and not started (queued and due, or leased by a worker that died)
    stalled: int  # of which waiting for longer than the bound
    oldest_wait_s: float  # how long the longest-waiting one has waited (0 when none waits)
    retrying: int  # queued again after a failed attempt
    given_up: int  # failed for good (attempts spent, or a permanent error), until retention removes them


def _due(now: datetime) -> ColumnElement[bool]:
    """Jobs that should be running now: queued and due, or leased by a worker that died."""
    return or_(and_(Job.status == "queued", Job.run_after <= now),
               and_(Job.status == "running", Job.locked_until < now))


# Since when a due job has waited: its due time, or the end of its dead worker's lease.
_WAITING_SINCE = case((Job.status == "queued", Job.run_after), else_=Job.locked_until)


class JobQueue:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._listeners: dict[str, list[Callable[[], None]]] = {}

    def listen(self, kinds: Iterable[str], wake: Callable[[], None]) -> None:
        """Call ``wake`` whenever a job of these kinds is enqueued in this process and committed: its workers
        look at once rather than at their next poll (other processes find it by polling)."""
        for kind in kinds:
            self._listeners.setdefault(kind, []).append(wake)

    def _wake(self, kind: str) -> None:
        for wake in self._listeners.get(kind, ()):
            wake()

    async def enqueue(self, kind: str, payload: dict[str, Any], *, dedupe_key: str | None = None,
                      max_attempts: int = 5, session: AsyncSession | None = None) -> int:
        """Add a job; with ``dedupe_key``, enqueuing the same key again while that job is still to run
        returns it. A finished job releases its key: a key names work to do, not a row's whole history, so
        that work asked for again (a rerun, or a new row that got a deleted one's id) is never dropped as
        a duplicate of work already done. Given a ``session``, the job is written in the caller's transaction
        (accepted together)."""
        if session is not None:
            # Workers are woken when the caller's transaction commits: before, they could not see the job.
            event.listen(session.sync_session, "after_commit", lambda _: self._wake(kind), once=True)
            return await self._insert(session, kind, payload, dedupe_key, max_attempts)
        async with self._sessions() as own, own.begin():
            job_id = await self._insert(own, kind, payload, dedupe_key, max_attempts)
        self._wake(kind)
        return job_id

    async def _insert(self, session: AsyncSession, kind: str, payload: dict[str, Any], dedupe_key: str | None,
                      max_attempts: int) -> int:
        if dedupe_key is not None:
            existing = await session.scalar(select(Job.id).where(Job.dedupe_key == dedupe_key))
            if existing is not None:
                return existing
        job = Job(kind=kind, payload=payload, dedupe_key=dedupe_key, status="queued", attempts=0,
                  max_attempts=max_attempts, run_after=utcnow(), request_id=request_id.get())
        try:
            async with session.begin_nested():
                session.add(job)
        except IntegrityError:  # a concurrent enqueue of the same key won
            existing = await session.scalar(select(Job.id).where(Job.dedupe_key == dedupe_key))
            assert existing is not None
            return existing
        return job.id

    async def claim(self, worker: str, kinds: list[str], *, lease_s: float) -> LeasedJob | None:
        """Lease the oldest runnable job of these kinds, or None."""
        now = utcnow()
        runnable = and_(Job.kind.in_(kinds), _due(now))
        candidate = select(Job.id).where(runnable).order_by(Job.id).limit(1)
        async with self._sessions() as session, session.begin():
            if session.bind.dialect.name == "postgresql":
                candidate = candidate.with_for_update(skip_locked=True)
            job_id = await session.scalar(candidate)
            if job_id is None:
                return None
            row = (await session.execute(
                update(Job).where(Job.id == job_id, runnable)
                .values(status="running", locked_by=worker, locked_until=now + timedelta(seconds=lease_s),
                        attempts=Job.attempts + 1)
                .returning(Job.id, Job.kind, Job.payload, Job.attempts, Job.max_attempts,
                           Job.request_id))).first()
        return LeasedJob(*row) if row is not None else None

    async def renew(self, job: LeasedJob, worker: str, *, lease_s: float) -> bool:
        """Extend a lease; False if the job is no longer this worker's (its lease ran out and moved on)."""
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(Job).where(Job.id == job.id, Job.locked_by == worker, Job.status == "running")
                .values(locked_until=utcnow() + timedelta(seconds=lease_s)))
        return result.rowcount == 1  # type: ignore[attr-defined]

    async def release(self, job: LeasedJob, worker: str) -> None:
        """Give an unfinished job back (its worker is stopping): due again at once for any worker, instead of
        after its lease, and this run is not counted against its attempts."""
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Job).where(Job.id == job.id, Job.locked_by == worker, Job.status == "running")
                .values(status="queued", locked_by=None, locked_until=None, run_after=utcnow(),
                        attempts=func.max(Job.attempts - 1, 0) if session.bind.dialect.name == "sqlite"
                        else func.greatest(Job.attempts - 1, 0)))

    async def complete(self, job: LeasedJob, worker: str) -> None:
        await self._finish(job, worker, status="done", error=None)

    async def fail(self, job: LeasedJob, worker: str, error: str, *, retry_in_s: float,
                   permanent: bool = False) -> None:
        """Record a failure: the job runs again after ``retry_in_s`` unless its attempts are spent (or
        the failure is ``permanent``)."""
        if permanent or job.attempts >= job.max_attempts:
            await self._finish(job, worker, status="failed", error=error)
            return
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Job).where(Job.id == job.id, Job.locked_by == worker)
                .values(status="queued", locked_by=None, locked_until=None, error=error[:2000],
                        run_after=utcnow() + timedelta(seconds=retry_in_s)))

    async def _finish(self, job: LeasedJob, worker: str, *, status: str, error: str | None) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Job).where(Job.id == job.id, Job.locked_by == worker)
                .values(status=status, locked_by=None, locked_until=None, finished_at=utcnow(),
                        dedupe_key=None, error=None if error is None else error[:2000]))

    async def backlog(self, *, stalled_after_s: float) -> list[Backlog]:
        """Per kind, the jobs due and not started, in one aggregate query (the claim index serves it)."""
        now = utcnow()
        bound = now - timedelta(seconds=stalled_after_s)
        query = (select(Job.kind, func.count(), func.sum(case((_WAITING_SINCE < bound, 1), else_=0)),
                        func.min(_WAITING_SINCE))
                 .where(_due(now)).group_by(Job.kind).order_by(Job.kind))
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [Backlog(kind, int(waiting), int(stalled or 0), since)
                for kind, waiting, stalled, since in rows]

    async def stats(self, *, stalled_after_s: float) -> list[KindStats]:
        """Per kind, everything /metrics says of the queue, in one aggregate query over the jobs not done
        (finished jobs are the bulk of the table and are left out by the claim index)."""
        now = utcnow()
        due = _due(now)
        bound = now - timedelta(seconds=stalled_after_s)

        def count(condition: ColumnElement[bool]) -> Any:
            return func.sum(case((condition, 1), else_=0))

        query = (select(Job.kind, count(Job.status == "queued"),
                        count(and_(Job.status == "running", Job.locked_until >= now)), count(due),
                        count(and_(due, _WAITING_SINCE < bound)), func.min(case((due, _WAITING_SINCE))),
                        count(and_(Job.status == "queued", Job.attempts > 0)), count(Job.status == "failed"))
                 .where(Job.status.in_(("queued", "running", "failed"))).group_by(Job.kind).order_by(Job.kind))
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [KindStats(kind, *(int(n or 0) for n in (queued, running, waiting, stalled)),
                          max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0,
                          int(retrying or 0), int(given_up or 0))
                for kind, queued, running, waiting, stalled, oldest, retrying, given_up in rows]

    async def stalled(self, *, stalled_after_s: float, limit: int = 100) -> list[tuple[int, str, datetime]]:
        """The jobs due for longer than ``stalled_after_s`` and not started: (id, kind, due since)."""
        now = utcnow()
        query = (select(Job.id, Job.kind, _WAITING_SINCE)
                 .where(_due(now), _WAITING_SINCE < now - timedelta(seconds=stalled_after_s))
                 .order_by(Job.id).limit(limit))
        async with self._sessions() as session:
            return [(job_id, kind, since) for job_id, kind, since in (await session.execute(query)).all()]

    async def status(self, job_id: int) -> Job | None:
        async with self._sessions() as session:
            return await session.get(Job, job_id)
