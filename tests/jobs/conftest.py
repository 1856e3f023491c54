"""A migrated database of each store, and the queue over it."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.db import migrate
from socle.db.session import create_engine, session_factory
from socle.jobs.queue import JobQueue


@pytest.fixture(params=["sqlite", "postgres"])
async def sessions(request: pytest.FixtureRequest,
                   tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}"
    else:
        url = request.getfixturevalue("postgres_database")
    migrate.upgrade(url)
    engine = create_engine(url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
def queue(sessions: async_sessionmaker[AsyncSession]) -> JobQueue:
    return JobQueue(sessions)
