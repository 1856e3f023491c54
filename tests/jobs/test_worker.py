"""The durable job queue and its workers, on real SQLite and real PostgreSQL (fixtures in conftest)."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from socle.jobs.kinds import Kind
from socle.jobs.queue import JobQueue
from socle.jobs.worker import JobWorkers, PermanentError


async def test_a_job_is_claimed_once_and_completed(queue: JobQueue) -> None:
    job_id = await queue.enqueue("ingest", {"document": 7})
    job = await queue.claim("w1", ["ingest"], lease_s=30)
    assert job is not None and (job.id, job.payload, job.attempts) == (job_id, {"document": 7}, 1)
    assert await queue.claim("w2", ["ingest"], lease_s=30) is None
    await queue.complete(job, "w1")
    row = await queue.status(job_id)
    assert row is not None and row.status == "done" and row.finished_at is not None


async def test_the_same_dedupe_key_is_one_job(queue: JobQueue) -> None:
    first = await queue.enqueue("ingest", {"sha256": "abc"}, dedupe_key="doc:abc")
    again = await queue.enqueue("ingest", {"sha256": "abc"}, dedupe_key="doc:abc")
    assert first == again


async def test_a_dead_workers_job_comes_back_when_its_lease_runs_out(queue: JobQueue) -> None:
    job_id = await queue.enqueue("ingest", {})
    # A lease long enough that a loaded machine still asks again before it runs out.
    assert (await queue.claim("dead", ["ingest"], lease_s=3)) is not None  # and never heard of again
    assert await queue.claim("alive", ["ingest"], lease_s=30) is None
    await asyncio.sleep(3.2)
    job = await queue.claim("alive", ["ingest"], lease_s=30)
    assert job is not None and job.id == job_id and job.attempts == 2
    assert not await queue.renew(job, "dead", lease_s=30)  # the dead worker cannot take it back


async def test_concurrent_workers_never_share_a_job(queue: JobQueue) -> None:
    ids = {await queue.enqueue("count", {"n": n}) for n in range(40)}
    seen: list[int] = []

    async def drain(worker: str) -> None:
        while (job := await queue.claim(worker, ["count"], lease_s=30)) is not None:
            seen.append(job.id)
            await queue.complete(job, worker)

    await asyncio.gather(*(drain(f"w{i}") for i in range(4)))
    assert sorted(seen) == sorted(ids)


async def test_workers_retry_then_fail_and_stop_at_a_permanent_error(queue: JobQueue) -> None:
    calls: dict[str, int] = {"flaky": 0, "broken": 0, "corrupt": 0}

    async def flaky(payload: dict[str, Any]) -> None:
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            raise ConnectionError("backend away")

    async def broken(payload: dict[str, Any]) -> None:
        calls["broken"] += 1
        raise ValueError("always")

    async def corrupt(payload: dict[str, Any]) -> None:
        calls["corrupt"] += 1
        raise PermanentError("not a PDF")

    given_up: list[tuple[str, dict[str, Any], str]] = []

    def kind(name: str, run: Callable[[dict[str, Any]], Awaitable[None]]) -> Kind:
        async def give_up(payload: dict[str, Any], error: str) -> None:
            given_up.append((name, payload, error))
        return Kind(name, run, give_up)

    workers = JobWorkers(queue, [kind("flaky", flaky), kind("broken", broken), kind("corrupt", corrupt)],
                         concurrency=2, lease_s=10, poll_s=0.05, backoff_s=0.05)
    ids = {kind: await queue.enqueue(kind, {"kind": kind}, max_attempts=3) for kind in calls}
    workers.start()
    try:
        for _ in range(200):
            rows = {kind: await queue.status(job_id) for kind, job_id in ids.items()}
            if all(row is not None and row.status in ("done", "failed") for row in rows.values()) \
                    and len(given_up) == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await workers.stop()
    assert {kind: row.status for kind, row in rows.items() if row} == {
        "flaky": "done", "broken": "failed", "corrupt": "failed"}
    assert calls == {"flaky": 3, "broken": 3, "corrupt": 1}
    assert "not a PDF" in (rows["corrupt"].error or "")
    # the owner hears of each job that will not run again, once, and of no other
    assert sorted(given_up) == [("broken", {"kind": "broken"}, "ValueError: always"),
                                ("corrupt", {"kind": "corrupt"}, "not a PDF")]
