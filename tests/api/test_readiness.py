"""Readiness on real SQLite and PostgreSQL: ready only on the schema this code expects, looked up at most once
per interval, and not ready (not failing) when the database cannot be read."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from socle.api.readiness import Readiness
from socle.db import migrate
from socle.db.session import create_engine


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, AsyncEngine]]:
    url = (f"sqlite+aiosqlite:///{tmp_path / 'socle.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_database"))
    engine = create_engine(url)
    yield url, engine
    await engine.dispose()


async def test_ready_once_the_schema_is_at_the_head(database: tuple[str, AsyncEngine]) -> None:
    url, engine = database
    assert not await Readiness(engine, ttl_s=0)()  # never migrated
    migrate.upgrade(url)
    readiness = Readiness(engine, ttl_s=60)
    assert await readiness()
    async with engine.begin() as connection:  # the schema goes back under this replica
        await connection.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    assert await readiness()  # the answer is kept for the interval: probes do not each reach the database
    assert not await Readiness(engine, ttl_s=0)()  # an older schema is never served
    async with engine.begin() as connection:  # a newer release migrated first (rolling upgrade)
        await connection.execute(text("UPDATE alembic_version SET version_num = '9999_of_a_newer_release'"))
    assert await Readiness(engine, ttl_s=0)()
    assert migrate.wait_until_current(url, timeout_s=0) is None
    migrate.upgrade(url)  # an older release starting then leaves the newer schema alone
    assert migrate.revisions(url) == {"9999_of_a_newer_release"}


async def test_an_unreadable_database_is_not_ready(tmp_path: Path) -> None:
    engine = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")  # nothing listens on port 1
    try:
        assert not await Readiness(engine, timeout_s=1)()
    finally:
        await engine.dispose()
