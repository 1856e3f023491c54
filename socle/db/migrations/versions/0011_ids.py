"""Ids are never handed out twice, and never run out.

SQLite hands the highest deleted ``INTEGER PRIMARY KEY`` out again: every table with an integer id is
rebuilt with ``AUTOINCREMENT`` (the full-text triggers of ``chunks`` are recreated, foreign keys and indexes
kept), and each table's counter starts past the ids that rows of other tables still name (usage rows and
quota rules of deleted users and keys). PostgreSQL: ids, their sequences and every column pointing at an
id become 64-bit.

Finished jobs release their dedupe key (a key now dedupes only among jobs still to run), and a document
whose job was dropped as a duplicate of a finished job of the same id gets its job (an app's work that was
dropped the same way is given its job by the app's own migration).

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

# Columns that hold an id without a foreign key (usage outlives the users and keys it names); every other
# column holding an id points at its table with a foreign key, and is found by reflection.
_IDS_WITHOUT_FOREIGN_KEY = {"usage": ("user_id", "key_id")}
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


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_autoincrement()
    else:
        _postgres_bigint()
    _release_finished_keys()


def _id_tables() -> list[str]:
    """Every table whose key is one integer ``id``, found by reflection (the platform's and the installed apps'
    alike); SQLite's virtual tables and their shadow tables are not tables of ours."""
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    names, virtual = inspector.get_table_names(), set[str]()
    if bind.dialect.name == "sqlite":  # in the order they were created: each is rebuilt as it was
        found = bind.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY rowid").all()
        names = [name for name, _ in found if not name.startswith("sqlite_")]
        virtual = {name for name, sql in found if sql.startswith("CREATE VIRTUAL TABLE")}
    tables = []
    for table in names:
        if table in virtual or any(table.startswith(f"{name}_") for name in virtual):
            continue
        columns = {column["name"]: column["type"] for column in inspector.get_columns(table)}
        if (inspector.get_pk_constraint(table)["constrained_columns"] == ["id"]
                and isinstance(columns["id"], sa.Integer)):
            tables.append(table)
    return tables


def _int_id_columns() -> dict[str, list[str]]:
    """The 32-bit columns that hold an id, by table: ids, the columns whose foreign key points at one, and
    those that name one without a foreign key (the others were 64-bit already)."""
    inspector = sa.inspect(op.get_bind())
    ids = set(_id_tables())
    found: dict[str, list[str]] = {}
    for table in inspector.get_table_names():
        holding = {*_IDS_WITHOUT_FOREIGN_KEY.get(table, ()), *(("id",) if table in ids else ())}
        for key in inspector.get_foreign_keys(table):
            if key["referred_table"] in ids and key["referred_columns"] == ["id"]:
                holding.update(key["constrained_columns"])
        narrow = [column["name"] for column in inspector.get_columns(table)
                  if column["name"] in holding and not isinstance(column["type"], sa.BigInteger)]
        if narrow:
            found[table] = narrow
    return found


def _sqlite_autoincrement() -> None:
    """Rebuild each table with AUTOINCREMENT (the migration environment turns foreign keys off meanwhile,
    as SQLite's procedure for rebuilding a table requires)."""
    bind = op.get_bind()
    tables = _id_tables()
    for table in tables:
        with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": True}):
            pass
    for statement in _CHUNKS_FTS_TRIGGERS:
        op.execute(statement)
    for table in tables:
        queries = (f"SELECT max(id) FROM {table}", *_NAMED_ELSEWHERE.get(table, ()))
        highest = max(bind.exec_driver_sql(query).scalar() or 0 for query in queries)
        bind.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = ?", (table,))
        bind.exec_driver_sql("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, highest))


def _postgres_bigint() -> None:
    for table, columns in _int_id_columns().items():
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
    if missing:
        bind.execute(_JOBS.insert(), missing)


def downgrade() -> None:
    """SQLite's tables lose AUTOINCREMENT; PostgreSQL's ids stay 64-bit (narrowing them could fail on ids
    past 2^31, and every earlier revision works with them)."""
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in _id_tables():
        with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": False}):
            pass
    for statement in _CHUNKS_FTS_TRIGGERS:
        op.execute(statement)
