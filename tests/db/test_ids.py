"""Ids are never handed out twice and never run out: every table with an integer id is AUTOINCREMENT on
SQLite and 64-bit on PostgreSQL, with every column that points at an id; an existing database is upgraded
without losing a row, a foreign key or the full-text index, and the work its reused ids swallowed runs."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Integer, Table, text
from sqlalchemy.ext.asyncio import AsyncEngine

from socle.apps import installed_apps
from socle.db import migrate
from socle.db.models import Base
from socle.db.session import create_engine


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'ids.db'}"
    return str(request.getfixturevalue("postgres_database"))


@pytest.fixture
async def engine(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(url)
    yield engine
    await engine.dispose()


def _id_tables() -> list[Table]:
    """Every table whose key is one integer id (the ORM's, so that a table added later is checked too; the
    installed apps' tables join the metadata when their modules are imported)."""
    installed_apps()
    return [table for table in Base.metadata.sorted_tables
            if len(table.primary_key.columns) == 1 and isinstance(table.primary_key.columns[0].type, Integer)]


def test_every_integer_id_is_declared_never_reused() -> None:
    assert {t.name for t in _id_tables()} >= {"users", "api_keys", "documents", "feedback_analyses", "jobs"}
    assert [t.name for t in _id_tables() if not t.dialect_options["sqlite"]["autoincrement"]] == []


async def test_the_schema_never_reuses_nor_runs_out_of_ids(url: str, engine: AsyncEngine) -> None:
    migrate.upgrade(url)
    async with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            schemas = dict((await connection.execute(text("SELECT name, sql FROM sqlite_master"))).all())
            assert [t.name for t in _id_tables() if "AUTOINCREMENT" not in schemas[t.name]] == []
            return
        types = dict((await connection.execute(text(
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public'"))).all())
        sequences = dict((await connection.execute(text("SELECT sequencename, data_type FROM pg_sequences")))
                         .all())
    pointing = [f"{t.name}.{c.name}" for t in Base.metadata.sorted_tables for c in t.columns
                if any(isinstance(fk.column.type, Integer) for fk in c.foreign_keys)]
    ids = [f"{t.name}.id" for t in _id_tables()]
    assert {column: types[column] for column in ids + pointing if types[column] != "bigint"} == {}
    assert {name: kind for name, kind in sequences.items() if kind != "bigint"} == {}
    assert len(sequences) >= len(ids)


POPULATED_0010 = [
    "INSERT INTO users (id, email, name, role_id, is_active, created_at) VALUES "
    "(1, 'a@x.fr', 'A', 1, TRUE, '2026-01-01 00:00:00+00'), "
    "(2, 'b@x.fr', 'B', 2, TRUE, '2026-01-01 00:00:00+00')",
    "INSERT INTO api_keys (id, public_id, secret_hash, name, user_id, created_at) VALUES "
    "(1, 'k1', 'h', '', 1, '2026-01-01 00:00:00+00'), (2, 'k2', 'h', '', 2, '2026-01-01 00:00:00+00')",
    "INSERT INTO collections (id, name, description, visibility, owner_id, created_at, updated_at, "
    "documents, chunks, revision) VALUES "
    "(1, 'c', '', 'private', 2, '2026-01-01 00:00:00+00', '2026-01-01 00:00:00+00', 2, 2, 1)",
    # Document 2 reused the id of a deleted document whose ingestion was done: its own job was dropped.
    "INSERT INTO documents (id, collection_id, name, content_hash, size_bytes, status, chunk_size, "
    "chunk_overlap, chunks, embedded, created_at, updated_at) VALUES "
    "(1, 1, 'a.txt', 'h1', 1, 'ready', 100, 10, 2, 0, '2026-01-01 00:00:00+00', '2026-01-01 00:00:00+00'), "
    "(2, 1, 'b.txt', 'h2', 1, 'queued', 100, 10, 0, 0, '2026-01-01 00:00:00+00', '2026-01-01 00:00:00+00')",
    "INSERT INTO chunks (id, document_id, collection_id, idx, text, lexical) VALUES "
    "(1, 1, 1, 0, 'Passeport', 'passeport mairie'), (2, 1, 1, 1, 'Délai', 'delai semaine')",
    "INSERT INTO jobs (id, kind, payload, dedupe_key, status, attempts, max_attempts, run_after, created_at) "
    "VALUES (1, 'rag.ingest', '{\"document_id\": 2}', 'rag.ingest:2', 'done', 1, 5, "
    "'2026-01-01 00:00:00+00', '2026-01-01 00:00:00+00')",
    # Usage rows and a quota rule of user 7, deleted since: the next user must not be 7.
    "INSERT INTO usage (created_at, user_id, key_id, role, group_ids, model, endpoint, status, "
    "prompt_tokens, completion_tokens, latency_ms, attempts, cost, energy_kwh, co2_kg) VALUES "
    "('2026-01-01 00:00:00+00', 7, 9, 'user', '[]', 'm', 'chat/completions', 'ok', 1, 1, 1.0, 1, 0, 0, 0)",
    # A row from before backends had public labels: its backend named by an address with credentials.
    "INSERT INTO usage (created_at, user_id, role, group_ids, model, backend, endpoint, status, prompt_tokens, "
    "completion_tokens, latency_ms, attempts, cost, energy_kwh, co2_kg) VALUES ('2026-01-01 00:00:00+00', 1, "
    "'admin', '[]', 'm', 'openai:http://u:secret@gpu1:8000/v1', 'chat/completions', 'ok', 1, 1, 1.0, 1, 0, 0, 0)",
    "INSERT INTO quotas (scope, subject, budget_period, created_at) VALUES "
    "('user', '7', 'month', '2026-01-01 00:00:00+00')",
]
COUNTED = ("users", "api_keys", "collections", "documents", "chunks", "usage", "quotas")


async def test_an_existing_database_is_upgraded_whole(url: str, engine: AsyncEngine) -> None:
    migrate.upgrade(url, "0010")
    async with engine.begin() as connection:
        for statement in POPULATED_0010:
            await connection.execute(text(statement))
        if engine.dialect.name == "postgresql":  # its sequences handed out these ids, user 7 and key 9 too
            for table, highest in {"users": 7, "api_keys": 9, "collections": 1, "documents": 2, "chunks": 2,
                                   "jobs": 1}.items():
                await connection.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {highest})"))
        before = {t: (await connection.execute(text(f"SELECT count(*) FROM {t}"))).scalar() for t in COUNTED}
    migrate.upgrade(url)
    async with engine.begin() as connection:
        after = {t: (await connection.execute(text(f"SELECT count(*) FROM {t}"))).scalar() for t in COUNTED}
        assert after == before
        backends = (await connection.execute(text("SELECT backend FROM usage"))).scalars().all()
        assert not [backend for backend in backends if backend and "gpu1" in backend]
        jobs = (await connection.execute(text("SELECT id, dedupe_key, status FROM jobs ORDER BY id"))).all()
        assert [tuple(job) for job in jobs] == [(1, None, "done"), (2, "rag.ingest:2", "queued")]
        new_user = (await connection.execute(text(
            "INSERT INTO users (email, name, role_id, is_active, created_at) "
            "VALUES ('c@x.fr', 'C', 2, TRUE, '2026-01-02 00:00:00+00') RETURNING id"))).scalar()
        assert new_user is not None and new_user > 7
        await connection.execute(text("DELETE FROM users WHERE id = 2"))  # foreign keys still cascade
        assert (await connection.execute(text("SELECT count(*) FROM api_keys"))).scalar() == 1
        assert (await connection.execute(text("SELECT count(*) FROM chunks"))).scalar() == 0
        if engine.dialect.name == "sqlite":  # the full-text index still follows the chunks
            assert (await connection.execute(text(
                "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'passeport'"))).scalar() == 0
            assert (await connection.execute(text("PRAGMA foreign_key_check"))).all() == []
