"""Job identity: a dedupe key dedupes only among jobs still to run, and job ids are never handed out twice."""
from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.db.models import Job
from socle.jobs.queue import JobQueue


async def test_a_finished_job_releases_its_dedupe_key(queue: JobQueue) -> None:
    for outcome in ("done", "failed"):
        key = f"rag.ingest:{outcome}"
        first = await queue.enqueue("rag.ingest", {"document_id": 1}, dedupe_key=key)
        job = await queue.claim("w", ["rag.ingest"], lease_s=30)
        assert job is not None and job.id == first
        assert await queue.enqueue("rag.ingest", {"document_id": 1}, dedupe_key=key) == first  # still running
        if outcome == "done":
            await queue.complete(job, "w")
        else:
            await queue.fail(job, "w", "corrupt", retry_in_s=0, permanent=True)
        again = await queue.enqueue("rag.ingest", {"document_id": 1}, dedupe_key=key)
        assert again != first  # the same work asked for again is not swallowed by the finished job
        rerun = await queue.claim("w", ["rag.ingest"], lease_s=30)
        assert rerun is not None and rerun.id == again
        await queue.complete(rerun, "w")
        finished = await queue.status(first)
        assert finished is not None and finished.status == outcome and finished.dedupe_key is None


async def test_a_job_waiting_for_a_retry_keeps_its_key(queue: JobQueue) -> None:
    first = await queue.enqueue("rag.ingest", {}, dedupe_key="rag.ingest:7")
    job = await queue.claim("w", ["rag.ingest"], lease_s=30)
    assert job is not None
    await queue.fail(job, "w", "backend away", retry_in_s=60)
    assert await queue.enqueue("rag.ingest", {}, dedupe_key="rag.ingest:7") == first


async def test_the_id_of_a_deleted_job_is_never_handed_out_again(
        queue: JobQueue, sessions: async_sessionmaker[AsyncSession]) -> None:
    await queue.enqueue("count", {})
    newest = await queue.enqueue("count", {})
    async with sessions() as session, session.begin():
        await session.execute(delete(Job).where(Job.id == newest))
    assert await queue.enqueue("count", {}) > newest
