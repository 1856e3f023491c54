"""Apply Alembic migrations from code (``socle db upgrade``, ``socle serve``, the tests), one process at a time.

Several replicas may start at once: each migrates under a database-wide lock (PostgreSQL: an advisory lock;
SQLite: an exclusive lock on a file beside the database), so the schema is migrated once and the others find
it current. Readiness and the replicas that do not migrate compare the database's revisions with the heads
of the migration scripts this code ships.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import functools
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

MIGRATIONS = Path(__file__).parent / "migrations"
APPS = Path(__file__).parents[1] / "apps"
LOCK_KEY = 0x736F636C65  # "socle": the advisory lock every replica takes to migrate PostgreSQL
log = logging.getLogger("socle.db")
T = TypeVar("T")


def alembic_config(database_url: str) -> Config:
    """The platform's migrations and the apps', on one history: every app shipped under ``socle/apps`` (installed
    or not, so that the history stays whole when one is taken off the list) and every installed one."""
    from socle.apps import installed_apps

    shipped = sorted(path for path in APPS.glob("*/migrations") if path.is_dir())
    installed = [app.migrations for app in installed_apps() if app.migrations and app.migrations not in shipped]
    folders = [MIGRATIONS / "versions", *shipped, *installed]
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(str(folder) for folder in folders))
    config.set_main_option("sqlalchemy.url", database_url)
    return config


@functools.cache
def heads() -> frozenset[str]:
    """The revisions this code expects the database at (read from the scripts once per process)."""
    return frozenset(ScriptDirectory.from_config(alembic_config("")).get_heads())


async def applied(connection: AsyncConnection) -> frozenset[str]:
    """The revisions the database is at; empty when it was never migrated."""
    if not await connection.run_sync(lambda sync: inspect(sync).has_table("alembic_version")):
        return frozenset()
    return frozenset((await connection.execute(text("SELECT version_num FROM alembic_version"))).scalars())


def revisions(database_url: str) -> frozenset[str]:
    """:func:`applied`, from synchronous code, on a connection of its own."""
    from socle.db.session import create_engine

    async def read() -> frozenset[str]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as connection:
                return await applied(connection)
        finally:
            await engine.dispose()

    return _run(read)


@functools.cache
def known() -> frozenset[str]:
    """Every revision of this code's migration scripts."""
    return frozenset(script.revision for script in ScriptDirectory.from_config(alembic_config("")).walk_revisions())


def serves(found: frozenset[str]) -> bool:
    """Whether this code may serve a database at ``found``: at its heads, or at a revision it does not know —
    written by a newer release whose migrations ran first in a rolling upgrade. Migrations only add (columns
    nullable or with defaults, tables) and drop what the release before stopped using, so the replicas still
    on the older release keep serving until they are replaced. Never an older schema, nor an empty one."""
    return found == heads() or bool(found - known())


def is_current(database_url: str) -> bool:
    return serves(revisions(database_url))


def wait_until_current(database_url: str, timeout_s: float, *, poll_s: float = 2.0,
                       on_wait: Callable[[str], None] | None = None) -> str | None:
    """Poll until the schema is at :func:`heads` (another process migrates it): None then; after ``timeout_s``,
    what the database was last found at (:func:`describe`). An unreachable database counts as not current yet
    (it may still be starting)."""
    deadline = time.monotonic() + timeout_s
    told = False
    while True:
        try:
            found: frozenset[str] | str = revisions(database_url)
        except Exception as exc:  # noqa: BLE001 (any failure to reach the database: keep waiting)
            found = f"unreachable ({type(exc).__name__})"
        if not isinstance(found, str) and serves(found):
            return None
        if not told and on_wait is not None:
            on_wait(describe(found))
            told = True
        if time.monotonic() >= deadline:
            return describe(found)
        time.sleep(max(0.0, min(poll_s, deadline - time.monotonic())))


def describe(found: frozenset[str] | str) -> str:
    """What the database holds against what this code expects, for an operator."""
    if isinstance(found, str):
        state = found
    else:
        state = ", ".join(sorted(found)) or "not migrated"
    return f"database at {state}; this version expects {', '.join(sorted(heads()))}"


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision`` under the migration lock; creates the SQLite file's directory if needed."""
    with locked(database_url):
        upgrade_unlocked(database_url, revision)


def upgrade_unlocked(database_url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision``: only while holding :func:`locked` (or alone on the database). A
    database a newer release already migrated is left as it is (see :func:`serves`)."""
    _sqlite_dir(database_url)
    if revision == "head" and (newer := revisions(database_url) - known()):
        log.warning("database at %s, newer than this release: nothing to migrate", ", ".join(sorted(newer)))
        return
    config = alembic_config(database_url)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(config, revision)
        return
    # The migration environment drives its own event loop: give it a thread of its own.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(command.upgrade, config, revision).result()


@contextlib.contextmanager
def locked(database_url: str) -> Iterator[None]:
    """Hold the migration lock for the block: other processes that want it wait until it ends."""
    if database_url.startswith("postgresql"):
        with _advisory_lock(database_url):
            yield
        return
    path = _sqlite_path(database_url)
    if path is None:  # an in-memory database belongs to one process
        yield
        return
    _sqlite_dir(database_url)
    with open(f"{path}.migrate.lock", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another process is migrating the database: waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _advisory_lock(database_url: str) -> Iterator[None]:
    """``pg_advisory_lock`` held on a dedicated connection, kept by a thread of its own with its own event
    loop: the block may be synchronous code, or itself run event loops (the migration environment does)."""
    acquired, release = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    async def hold() -> None:
        engine = create_async_engine(database_url, poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                lock = await connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY})
                if not lock:
                    log.info("another process is migrating the database: waiting for it")
                    await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})
                await connection.commit()  # the lock belongs to the session, not to a transaction
                acquired.set()
                try:
                    await asyncio.to_thread(release.wait)
                finally:
                    await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
                    await connection.commit()
        finally:
            await engine.dispose()

    def main() -> None:
        try:
            asyncio.run(hold())
        except BaseException as exc:  # noqa: BLE001 (handed to the waiting thread)
            failure.append(exc)
        finally:
            acquired.set()

    holder = threading.Thread(target=main, name="migration-lock", daemon=True)
    holder.start()
    acquired.wait()
    if failure:
        holder.join()
        raise failure[0]
    try:
        yield
    finally:
        release.set()
        holder.join()
        if failure:
            raise failure[0]


def _sqlite_path(database_url: str) -> Path | None:
    if not database_url.startswith("sqlite") or ":///" not in database_url:
        return None
    path = database_url.split(":///", 1)[1].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def _sqlite_dir(database_url: str) -> None:
    path = _sqlite_path(database_url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def _run(action: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine from synchronous code, in a thread of its own when an event loop already runs here."""
    async def main() -> T:
        return await action()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()
