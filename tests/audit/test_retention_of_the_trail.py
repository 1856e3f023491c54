"""Pruning the audit trail's oldest entries (its retention period) keeps the chain verifiable, and what is
cut off either end without a recorded pruning is found: on SQLite and PostgreSQL."""
from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.audit import store
from socle.audit.chain import GENESIS, seal
from socle.audit.service import Action, AuditTrail
from socle.db import migrate
from socle.db.models import AuditEvent, utcnow
from socle.db.session import create_engine, session_factory
from socle.identity.permissions import SYSTEM


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest,
                tmp_path: Path) -> AsyncIterator[tuple[AuditTrail, async_sessionmaker[AsyncSession]]]:
    url = (f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_database"))
    migrate.upgrade(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    yield AuditTrail(sessions), sessions
    await engine.dispose()


async def test_pruning_keeps_the_chain_verifiable(
        database: tuple[AuditTrail, async_sessionmaker[AsyncSession]]) -> None:
    trail, sessions = database
    for number in range(6):
        await trail.record(Action.KEY_CREATED, actor=SYSTEM, target=("key", number))
    async with sessions() as session, session.begin():  # the first four are two years old
        old = list(await session.scalars(select(AuditEvent.id).order_by(AuditEvent.id).limit(4)))
        await session.execute(update(AuditEvent).where(AuditEvent.id.in_(old))
                              .values(at=utcnow() - timedelta(days=730)))
    # back-dating changed what those entries' hashes cover: re-seal them as if written then
    async with sessions() as session, session.begin():
        previous = GENESIS
        for row in await session.scalars(select(AuditEvent).order_by(AuditEvent.id)):
            row.prev_hash, row.hash = previous, seal(previous, store.sealed(row))
            previous = row.hash
    assert (await trail.verify()).ok

    assert await trail.prune(utcnow() - timedelta(days=365)) == 4
    result = await trail.verify()
    assert result.ok and result.entries == 3, result  # two kept, and the record of the pruning
    pruned = (await trail.events(SYSTEM, store.AuditFilter(action=Action.AUDIT_PRUNED)))[0]
    assert pruned.details["entries"] == 4 and pruned.details["through_id"] == old[-1]
    head = result.head

    async with sessions() as session, session.begin():  # an entry cut off the start, without a pruning
        first = await session.scalar(select(func.min(AuditEvent.id)))
        await session.execute(delete(AuditEvent).where(AuditEvent.id == first))
    result = await trail.verify()
    assert not result.ok and result.broken_id == first + 1 and "before it were deleted" in (result.reason or "")

    await trail.record(Action.KEY_REVOKED, actor=SYSTEM, target=("key", 1))
    async with sessions() as session, session.begin():  # the end cut off: only a head kept elsewhere tells
        last = await session.scalar(select(func.max(AuditEvent.id)))
        await session.execute(delete(AuditEvent).where(AuditEvent.id >= last - 1))
    assert (await trail.verify(expected_head=head)).head_found is False
