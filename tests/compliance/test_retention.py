"""Retention: the daily job deletes, kind by kind, what is older than its period and keeps the rest, on real
SQLite and real PostgreSQL; the audit trail's chain still verifies after its oldest entries went."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from socle.apps.feedback.models import FeedbackDataset, FeedbackMessage
from socle.audit import store as audit_store
from socle.audit.chain import Sealed
from socle.compliance.retention import KIND
from socle.db import migrate
from socle.db.models import (
    AuditEvent,
    Chunk,
    Collection,
    Conversation,
    Document,
    Job,
    LoginSession,
    Message,
    RetentionRun,
    Role,
    StoredResponse,
    UsageRecord,
    User,
    utcnow,
)
from socle.identity.permissions import SYSTEM
from socle.jobs.worker import JobWorkers
from socle.platform import Mode, Platform
from socle.settings import Settings

NOW = utcnow()
OLD, RECENT = NOW - timedelta(days=400), NOW - timedelta(days=10)


@pytest.fixture(params=["sqlite", "postgres"])
async def platform(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Platform]:
    url = (f"sqlite+aiosqlite:///{tmp_path / 'socle.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_database"))
    migrate.upgrade(url)
    settings = Settings(data_dir=tmp_path, database_url=url, retention_documents_days=30,
                        retention_audit_days=365, _env_file=None)  # type: ignore[call-arg]
    opened = Platform.build(settings, Mode.ADMIN)
    yield opened
    await opened.close()


async def seed(p: Platform) -> dict[str, int]:
    """One old and one recent row of each kind; the ids of the old and recent documents."""
    async with p.sessions() as session, session.begin():
        role = await session.scalar(select(Role).where(Role.name == "user"))
        user = User(email="agent@ministere.gouv.fr", name="Agent", role=role)
        session.add(user)
        await session.flush()
        for when in (OLD, RECENT):
            conversation = Conversation(user_id=user.id, title=f"du {when:%Y-%m-%d}", model="m", created_at=when,
                                        updated_at=when)
            session.add(conversation)
            await session.flush()
            session.add(Message(conversation_id=conversation.id, role="user", content="question", created_at=when))
            session.add(UsageRecord(created_at=when, user_id=user.id, role="user", group_ids=[], model="m",
                                    endpoint="chat", status="ok", latency_ms=1.0))
            session.add(StoredResponse(owner_id=user.id, model="m", status="completed", input_items=[], output=[],
                                       parameters={}, created_at=when))  # kept as long as conversations
            dataset = FeedbackDataset(owner_id=user.id, name=f"avis {when:%Y}", created_at=when, messages=1)
            session.add(dataset)
            await session.flush()
            session.add(FeedbackMessage(dataset_id=dataset.id, external_id="1", text="avis"))
            session.add(LoginSession(id=f"{when:%Y%m%d}".ljust(64, "0"), user_id=user.id, csrf_token="t",
                                     created_at=when - timedelta(days=1), expires_at=when, last_seen_at=when))
        collection = Collection(name="Notes", owner_id=user.id, documents=2, chunks=2)
        session.add(collection)
        await session.flush()
        ids = {}
        for label, when in (("old", OLD), ("recent", RECENT)):
            document = Document(collection_id=collection.id, name=f"{label}.md", content_hash=label * 8,
                                size_bytes=10, status="ready", chunk_size=2048, chunk_overlap=200, chunks=1,
                                created_at=when, updated_at=when)
            session.add(document)
            await session.flush()
            session.add(Chunk(document_id=document.id, collection_id=collection.id, idx=0, text=f"texte {label}",
                              lexical=f"texte {label}"))
            ids[label] = document.id
        ids["collection"] = collection.id
        for when in (OLD - timedelta(days=1), OLD, RECENT):
            await audit_store.append(session, Sealed(at=when, action="auth.sign_in", actor_user_id=user.id,
                                                     actor_key_id=None, target_type=None, target_id=None,
                                                     details={}, address=None, channel="ui"))
    p.settings.documents_dir.mkdir(parents=True, exist_ok=True)
    for document_id in (ids["old"], ids["recent"]):
        p.documents.path(document_id).write_bytes(b"not ingested yet")
    return ids


async def run_the_job(p: Platform) -> None:
    """As the platform does it: the day's job enqueued, then run by a worker."""
    job_id = await p.retention.schedule()
    assert job_id is not None
    workers = JobWorkers(p.jobs, p.retention.kinds, concurrency=1, poll_s=0.05)
    workers.start()
    try:
        for _ in range(600):
            job = await p.jobs.status(job_id)
            assert job is not None and job.status != "failed", job.error if job else None
            if job.status == "done":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the retention job did not finish")
    finally:
        await workers.stop()
    assert await p.retention.schedule() is None  # today's run is done: not enqueued again


async def count(p: Platform, model: type, *where: object) -> int:
    async with p.sessions() as session:
        statement = select(func.count()).select_from(model).where(*where)  # type: ignore[arg-type]
        return int(await session.scalar(statement) or 0)


async def test_the_daily_job_deletes_what_is_past_its_period_and_keeps_the_rest(platform: Platform) -> None:
    p = platform
    ids = await seed(p)
    await run_the_job(p)

    async with p.sessions() as session:
        titles = list(await session.scalars(select(Conversation.title)))
        assert titles == [f"du {RECENT:%Y-%m-%d}"]
        assert await session.scalar(select(func.count()).select_from(Message)) == 1
        usage = list(await session.scalars(select(UsageRecord.created_at)))
        assert usage == [RECENT]
        assert list(await session.scalars(select(StoredResponse.created_at))) == [RECENT]
        assert list(await session.scalars(select(FeedbackDataset.name))) == [f"avis {RECENT:%Y}"]
        assert await session.scalar(select(func.count()).select_from(FeedbackMessage)) == 1
        assert list(await session.scalars(select(LoginSession.expires_at))) == [RECENT]  # 30 days after expiry
        assert list(await session.scalars(select(Document.id))) == [ids["recent"]]
        assert list(await session.scalars(select(Chunk.text))) == ["texte recent"]
        collection = await session.get(Collection, ids["collection"])
        assert collection is not None and (collection.documents, collection.chunks) == (1, 1)
        run = await session.scalar(select(RetentionRun))
        job = await session.scalar(select(Job).where(Job.kind == KIND))
    assert not p.documents.path(ids["old"]).exists() and p.documents.path(ids["recent"]).exists()
    assert run is not None and run.day == NOW.date().isoformat()
    assert run.counts == {"conversations": 1, "usage": 1, "documents": 1, "feedback": 1, "audit": 2, "sessions": 1,
                          "responses": 1, "batches": 0}
    assert job is not None and job.status == "done" and job.payload == {"day": run.day}
    verification = await p.audit.verify()
    assert verification.ok, verification.reason  # the pruning is recorded: the chain still verifies
    async with p.sessions() as session:
        kept = list(await session.scalars(select(AuditEvent.at).order_by(AuditEvent.id)))
    assert kept[0] == RECENT and len(kept) == 2  # the recent entry, then the record of the pruning

    again = await p.retention.run(run.day)  # idempotent: nothing more to delete
    assert set(again.counts.values()) == {0}


async def test_a_period_of_zero_keeps_that_kind(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'socle.db'}"
    migrate.upgrade(url)
    settings = Settings(data_dir=tmp_path, database_url=url, retention_conversations_days=0,
                        retention_usage_days=0, _env_file=None)  # type: ignore[call-arg]
    p = Platform.build(settings, Mode.ADMIN)
    try:
        await seed(p)
        run = await p.retention.run(NOW.date().isoformat())
        assert "conversations" not in run.counts and "usage" not in run.counts and "documents" not in run.counts
        assert [await count(p, kind) for kind in (Conversation, UsageRecord, Document)] == [2, 2, 2]
        overview = await p.retention.overview(SYSTEM)
        assert overview.last is not None and overview.last.id == run.id
        assert overview.periods.of("conversations") == 0 and overview.periods.of("audit") == 1825
    finally:
        await p.engine.dispose()
