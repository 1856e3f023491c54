"""Stopping workers (a worker process told to stop), on real SQLite and PostgreSQL: no new job is taken, a job
that finishes within the grace is completed, and one that does not is handed back to the queue for another
worker to take at once, its interrupted run not counted against its attempts."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from socle.jobs.kinds import Kind
from socle.jobs.queue import JobQueue
from socle.jobs.worker import JobWorkers

LEASE_S = 600.0  # never runs out during a test: only a hand-back makes a job available again


async def _until(condition: Callable[[], Awaitable[bool] | bool], timeout_s: float = 20) -> None:
    async with asyncio.timeout(timeout_s):
        while not await _value(condition()):
            await asyncio.sleep(0.02)


async def _value(result: Awaitable[bool] | bool) -> bool:
    return result if isinstance(result, bool) else await result


async def test_a_job_finishing_within_the_grace_completes_and_no_new_job_is_taken(queue: JobQueue) -> None:
    started = asyncio.Event()

    async def short(payload: dict[str, Any]) -> None:
        started.set()
        await asyncio.sleep(0.5)

    workers = JobWorkers(queue, [Kind("short", short)], concurrency=1, lease_s=LEASE_S, poll_s=0.05)
    first = await queue.enqueue("short", {})
    workers.start()
    await asyncio.wait_for(started.wait(), 20)
    second = await queue.enqueue("short", {})
    await workers.stop(grace_s=10)
    assert (await queue.status(first)).status == "done"  # type: ignore[union-attr]
    assert (await queue.status(second)).status == "queued"  # type: ignore[union-attr]


async def test_a_job_still_running_after_the_grace_is_handed_back_at_once(queue: JobQueue) -> None:
    runs: list[str] = []
    release = asyncio.Event()

    def kind(name: str) -> Kind:
        async def run(payload: dict[str, Any]) -> None:
            runs.append(name)
            await release.wait()
        return Kind("long", run)

    stopping = JobWorkers(queue, [kind("stopping")], concurrency=1, lease_s=LEASE_S, poll_s=0.05)
    job_id = await queue.enqueue("long", {})
    stopping.start()
    await _until(lambda: runs == ["stopping"])
    assert stopping.running == {job_id}
    await stopping.stop(grace_s=0.2)
    row = await queue.status(job_id)
    assert row is not None and (row.status, row.locked_by, row.locked_until, row.attempts) == ("queued", None, None, 0)

    taking = JobWorkers(queue, [kind("taking")], concurrency=1, lease_s=LEASE_S, poll_s=0.05)
    taking.start()
    try:
        await _until(lambda: runs == ["stopping", "taking"])  # long before the lease
        release.set()
        await _until(lambda: _status(queue, job_id, "done"))
    finally:
        await taking.stop()
    assert (await queue.status(job_id)).attempts == 1  # type: ignore[union-attr]


async def _status(queue: JobQueue, job_id: int, status: str) -> bool:
    row = await queue.status(job_id)
    return row is not None and row.status == status
