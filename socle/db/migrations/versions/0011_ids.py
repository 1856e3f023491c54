"""Ids are never handed out twice, and never run out.

SQLite hands the highest deleted ``INTEGER PRIMARY KEY`` out again: every table with an integer id is
rebuilt with ``AUTOINCREMENT`` (the full-text triggers of ``chunks`` are recreated, foreign keys and indexes
kept), and each table's counter starts past the ids that rows of other tables still name (usage rows and
quota rules of deleted users and keys). PostgreSQL: ids, their sequences and every column pointing at an
id become 64-bit.

Finished jobs release their dedupe key (a key now dedupes only among jobs still to run), and a document or
analysis whose job was dropped as a duplicate of a finished job of the same id gets its job.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from socle.db.models import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Every table with an integer id (frozen: later tables are created with their options).
ID_TABLES = ("roles", "users", "groups", "api_keys", "usage", "quotas", "jobs", "collections", "documents",
             "chunks", "conversations", "messages", "feedback_datasets", "feedback_messages",
             "feedback_analyses", "feedback_annotations")
# The 32-bit columns that hold an id on PostgreSQL, by table (the others were 64-bit already).
INT_ID_COLUMNS = {
    "roles": ("id",),
    "users": ("id", "role_id"),
    "groups": ("id",),
    "group_members": ("group_id", "user_id"),
    "api_keys": ("id", "user_id"),
    "usage": ("user_id", "key_id"),
    "quotas": ("id",),
    "collections": ("id", "group_id", "owner_id"),
    "documents": ("id", "collection_id"),
    "chunks": ("document_id", "collection_id"),
    "login_sessions": ("user_id",),
    "conversations": ("id", "user_id"),
    "messages": ("conversation_id",),
    "feedback_datasets": ("id", "owner_id"),
    "feedback_messages": ("dataset_id",),
    "feedback_analyses": ("id", "dataset_id", "owner_id"),
    "feedback_annotations": ("analysis_id",),
}
# Ids that rows of other tables may still name after their own row was deleted.
_QUOTA_SUBJECTS = ("SELECT max(CAST(subject AS INTEGER)) FROM quotas "
                   "WHERE scope = '{}' AND length(subject) < 19")  # an id's digits, within 64 bits
_NAMED_ELSEWHERE = {
    "users": ("SELECT max(user_id) FROM usage", _QUOTA_SUBJECTS.format("user")),
    "api_keys": ("SELECT max(key_id) FROM usage", _QUOTA_SUBJECTS.format("key")),
    "groups": (_QUOTA_SUBJECTS.format("group"),),
}
# The triggers that keep the FTS5 index of chunks in step (0006): dropping a table drops its triggers.
_CHUNKS_FTS_TRIGGERS = (
    "CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN "
    "INSERT INTO chunks_fts(rowid, lexical) VALUES (new.id, new.lexical); END",
    "CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN "
    "INSERT INTO chunks_fts(chunks_fts, rowid, lexical) VALUES ('delete', old.id, old.lexical); END",
    "CREATE TRIGGER chunks_fts_update AFTER UPDATE OF lexical ON chunks BEGIN "
    "INSERT INTO chunks_fts(chunks_fts, rowid, lexical) VALUES ('delete', old.id, old.lexical); "
    "INSERT INTO chunks_fts(rowid, lexical) VALUES (new.id, new.lexical); END",
)

_JOBS = sa.table("jobs", sa.column("id", sa.Integer), sa.column("kind", sa.String),
                 sa.column("payload", sa.JSON), sa.column("dedupe_key", sa.String),
                 sa.column("status", sa.String),
                 sa.column("attempts", sa.Integer), sa.column("max_attempts", sa.Integer),
                 sa.column("run_after", UTCDateTime), sa.column("created_at", UTCDateTime))
_DOCUMENTS = sa.table("documents", sa.column("id", sa.Integer), sa.column("status", sa.String))
_ANALYSES = sa.table("feedback_analyses", sa.column("id", sa.Integer), sa.column("status", sa.String),
                     sa.column("options", sa.JSON))


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_autoincrement()
    else:
        _postgres_bigint()
    _release_finished_keys()


def _sqlite_autoincrement() -> None:
    """Rebuild each table with AUTOINCREMENT (the migration environment turns foreign keys off meanwhile,
    as SQLite's procedure for rebuilding a table requires)."""
    bind = op.get_bind()
    for table in ID_TABLES:
        with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": True}):
            pass
    for statement in _CHUNKS_FTS_TRIGGERS:
        op.execute(statement)
    for table in ID_TABLES:
        queries = (f"SELECT max(id) FROM {table}", *_NAMED_ELSEWHERE.get(table, ()))
        highest = max(bind.exec_driver_sql(query).scalar() or 0 for query in queries)
        bind.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = ?", (table,))
        bind.exec_driver_sql("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, highest))


def _postgres_bigint() -> None:
    for table, columns in INT_ID_COLUMNS.items():
        op.execute(f'ALTER TABLE "{table}" ' + ", ".join(f'ALTER COLUMN "{c}" TYPE BIGINT' for c in columns))
        if "id" in columns:
            op.execute(f"ALTER SEQUENCE {_sequence(table)} AS BIGINT")  # else it stops at 2^31 - 1


def _sequence(table: str) -> str:
    name = op.get_bind().execute(sa.text("SELECT pg_get_serial_sequence(:table, 'id')"),
                                 {"table": table}).scalar()
    assert name is not None, f"{table}.id has no sequence"
    return str(name)


def _release_finished_keys() -> None:
    """A finished job keeps no dedupe key; work that waits on a job dropped as a duplicate gets one."""
    bind = op.get_bind()
    bind.execute(_JOBS.update().where(_JOBS.c.status.in_(("done", "failed"))).values(dedupe_key=None))
    waiting = {key for (key,) in bind.execute(sa.select(_JOBS.c.dedupe_key)
                                              .where(_JOBS.c.dedupe_key.isnot(None)))}
    now = datetime.now(UTC)
    missing: list[dict[str, object]] = []

    def need(kind: str, payload: dict[str, object], key: str, max_attempts: int) -> None:
        if key not in waiting:
            missing.append({"kind": kind, "payload": payload, "dedupe_key": key, "status": "queued",
                            "attempts": 0, "max_attempts": max_attempts, "run_after": now, "created_at": now})

    for (document_id,) in bind.execute(sa.select(_DOCUMENTS.c.id)
                                       .where(_DOCUMENTS.c.status.in_(("queued", "processing")))):
        need("rag.ingest", {"document_id": document_id}, f"rag.ingest:{document_id}", 5)
    for analysis_id, options in bind.execute(sa.select(_ANALYSES.c.id, _ANALYSES.c.options)
                                             .where(_ANALYSES.c.status == "queued")):
        run = int((options or {}).get("runs", 0))
        need("feedback.analyze", {"analysis_id": analysis_id, "run": run},
             f"feedback.analyze:{analysis_id}:{run}", 10)
    if missing:
        bind.execute(_JOBS.insert(), missing)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in ID_TABLES:
            with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": False}):
                pass
        for statement in _CHUNKS_FTS_TRIGGERS:
            op.execute(statement)
        return
    for table, columns in INT_ID_COLUMNS.items():
        if "id" in columns:
            op.execute(f"ALTER SEQUENCE {_sequence(table)} AS INTEGER")
        op.execute(f'ALTER TABLE "{table}" ' + ", ".join(f'ALTER COLUMN "{c}" TYPE INTEGER' for c in columns))
