"""Async engine and session factory, for SQLite (WAL) or PostgreSQL, chosen by URL."""
from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA secure_delete=ON")  # deleted rows are zeroed, not left in free pages (erasure)
    cursor.close()


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """One pooled engine per process. SQLite gets WAL, foreign keys and secure deletion on every connection."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, pool_pre_ping=False)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
