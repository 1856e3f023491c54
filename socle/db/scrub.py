"""Making deleted rows unrecoverable from the database's files, after an erasure or a retention run.

SQLite: every connection has ``secure_delete`` on (``socle.db.session``), so freed space is zeroed; but in
WAL mode the rows' earlier versions stay in the write-ahead log until it is checkpointed: a
``TRUNCATE`` checkpoint copies the log into the database and empties it. PostgreSQL: a deleted row stays
in its table's pages (and its vectors in the HNSW index) until vacuum reclaims them: the tables are
vacuumed now rather than whenever autovacuum comes by.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("socle.db")


async def scrub(engine: AsyncEngine, tables: Sequence[str]) -> None:
    """Best effort, after the deletion committed: a failure is logged (autovacuum and the next
    checkpoint will do it) and never undoes the erasure."""
    try:
        if engine.dialect.name == "sqlite":
            async with engine.connect() as connection:
                busy, _, _ = (await connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))).one()
                if busy:
                    log.warning("the write-ahead log could not be emptied now (a reader holds it): "
                                "deleted rows leave it at the next checkpoint")
        elif engine.dialect.name == "postgresql":
            async with engine.connect() as connection:
                connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
                for table in tables:
                    await connection.execute(text(f'VACUUM "{table}"'))
    except Exception:
        log.exception("could not scrub the deleted rows from the database's files now")
