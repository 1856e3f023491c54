"""The watchdog: a job due and not started within the bound is logged once and counted, per kind."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.db.models import Job, utcnow
from socle.jobs.queue import JobQueue
from socle.jobs.watchdog import JobWatchdog


async def _due_for(sessions: async_sessionmaker[AsyncSession], job_id: int, seconds: float) -> None:
    """Make a queued job due since ``seconds`` ago, as if it had waited that long."""
    async with sessions() as session, session.begin():
        await session.execute(update(Job).where(Job.id == job_id)
                              .values(run_after=utcnow() - timedelta(seconds=seconds)))


async def test_a_job_nobody_takes_is_logged_once_and_counted(
        queue: JobQueue, sessions: async_sessionmaker[AsyncSession],
        caplog: pytest.LogCaptureFixture) -> None:
    watchdog = JobWatchdog(queue, stall_s=300)
    orphan = await queue.enqueue("nobody.handles", {})
    await _due_for(sessions, orphan, 3600)
    await queue.enqueue("rag.ingest", {})
    later = await queue.enqueue("rag.ingest", {})
    async with sessions() as session, session.begin():  # a retry not due yet is not waiting
        await session.execute(update(Job).where(Job.id == later)
                              .values(run_after=utcnow() + timedelta(hours=1)))

    with caplog.at_level(logging.WARNING, logger="socle.jobs"):
        await watchdog.check()
        await watchdog.check()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"job {orphan} (nobody.handles) has waited 3600 s")
    backlog = {kind: (waiting, stalled, wait_s) for kind, waiting, stalled, wait_s in watchdog.backlog()}
    assert backlog["nobody.handles"][:2] == (1, 1) and backlog["nobody.handles"][2] >= 3600
    assert backlog["rag.ingest"][:2] == (1, 0) and backlog["rag.ingest"][2] < 300

    job = await queue.claim("w", ["nobody.handles"], lease_s=30)  # a worker of its kind came
    assert job is not None and job.id == orphan
    await queue.complete(job, "w")
    await watchdog.check()
    backlog = {kind: (waiting, stalled) for kind, waiting, stalled, _ in watchdog.backlog()}
    assert backlog == {"nobody.handles": (0, 0), "rag.ingest": (1, 0)}  # its gauges drop to zero


async def test_a_job_whose_worker_died_is_waiting_again(
        queue: JobQueue, sessions: async_sessionmaker[AsyncSession],
        caplog: pytest.LogCaptureFixture) -> None:
    watchdog = JobWatchdog(queue, stall_s=60)
    job_id = await queue.enqueue("rag.embed", {})
    assert await queue.claim("dead", ["rag.embed"], lease_s=30) is not None
    await watchdog.check()
    assert watchdog.backlog() == []  # leased and alive: nothing waits
    async with sessions() as session, session.begin():  # its lease ran out two minutes ago
        await session.execute(update(Job).where(Job.id == job_id)
                              .values(locked_until=utcnow() - timedelta(seconds=120)))
    with caplog.at_level(logging.WARNING, logger="socle.jobs"):
        await watchdog.check()
    [(kind, waiting, stalled, wait_s)] = watchdog.backlog()
    assert (kind, waiting, stalled) == ("rag.embed", 1, 1) and wait_s >= 120
    assert [r.getMessage().split(" has ")[0] for r in caplog.records] == [f"job {job_id} (rag.embed)"]
