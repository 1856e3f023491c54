"""Alembic environment: runs migrations over the async engine the application uses."""
from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from socle.apps import installed_apps
from socle.db.models import Base
from socle.db.session import create_engine

installed_apps()  # their tables join the shared metadata
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Rebuilding a table (batch mode) drops the old one: with foreign keys enforced, SQLite would
            # first delete every row pointing at it (ON DELETE CASCADE). Its procedure turns them off, before
            # any transaction begins, and checks them once the schema is done.
            await connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        await connection.run_sync(_run)
        if sqlite and (broken := (await connection.exec_driver_sql("PRAGMA foreign_key_check")).all()):
            raise RuntimeError(f"the migration left rows pointing at missing rows: {broken[:10]}")
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
