"""A key not in the cache is read once for every call presenting it at that moment: a burst of calls after its
cache entry expires waits on one query instead of draining the database pool (which answered 500s)."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from socle.db import migrate
from socle.errors import Unauthenticated
from socle.identity import keys
from socle.platform import Mode, Platform
from socle.settings import Settings


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'socle.db'}"
    migrate.upgrade(url)
    opened = Platform.build(Settings(data_dir=tmp_path, database_url=url, db_pool_size=2,  # type: ignore[call-arg]
                                     _env_file=None), Mode.ADMIN)
    yield opened
    await opened.close()


@pytest.fixture
def key_reads(platform: Platform) -> Iterator[list[str]]:
    """The statements that read API keys, as the database driver receives them."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM api_keys" in statement:
            seen.append(statement)

    event.listen(platform.engine.sync_engine, "before_cursor_execute", record)
    yield seen
    event.remove(platform.engine.sync_engine, "before_cursor_execute", record)


async def test_a_burst_of_calls_reads_an_uncached_key_once(platform: Platform, key_reads: list[str],
                                                         tmp_path: Path) -> None:
    given = keys.new_key()[0]
    await platform.identity.bootstrap_admin("admin@ministere.gouv.fr", tmp_path / "admin.key", key=given)
    platform.identity.forget_all()
    key_reads.clear()
    principals = await asyncio.gather(*(platform.identity.authenticate(given) for _ in range(300)))
    assert {p.role for p in principals} == {"admin"} and len(key_reads) == 1
    wrong = given[:-4] + ("aaaa" if not given.endswith("aaaa") else "bbbb")  # same key, another secret
    for outcome in await asyncio.gather(*(platform.identity.authenticate(wrong) for _ in range(50)),
                                        return_exceptions=True):
        assert isinstance(outcome, Unauthenticated)
    assert len(key_reads) == 1  # cached: the wrong secret is refused without reading again


async def test_an_unknown_key_burst_is_refused_with_one_read(platform: Platform, key_reads: list[str]) -> None:
    unknown = keys.new_key()[0]
    outcomes = await asyncio.gather(*(platform.identity.authenticate(unknown) for _ in range(100)),
                                    return_exceptions=True)
    assert all(isinstance(outcome, Unauthenticated) for outcome in outcomes) and len(key_reads) == 1
    with pytest.raises(Unauthenticated):  # not cached: read again next time (a key may be created meanwhile)
        await platform.identity.authenticate(unknown)
    assert len(key_reads) == 2


async def test_a_caller_that_leaves_does_not_fail_the_others(platform: Platform, tmp_path: Path) -> None:
    given = keys.new_key()[0]
    await platform.identity.bootstrap_admin("admin@ministere.gouv.fr", tmp_path / "admin.key", key=given)
    platform.identity.forget_all()
    first = asyncio.ensure_future(platform.identity.authenticate(given))
    others = [asyncio.ensure_future(platform.identity.authenticate(given)) for _ in range(10)]
    await asyncio.sleep(0)
    first.cancel()
    assert {p.role for p in await asyncio.gather(*others)} == {"admin"}
    with pytest.raises(asyncio.CancelledError):
        await first
