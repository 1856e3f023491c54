"""Documents and their chunks, with the full-text index of each store; collection counters.

SQLite: an FTS5 index over ``chunks.lexical`` kept in step by triggers (so it is written in the same
transaction as the chunk rows), vectors as float32 blobs. PostgreSQL: a generated ``tsvector`` with a
GIN index, vectors in pgvector's ``vector`` (the HNSW index is built by the store for the embedding
model's dimension).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

from socle.db.models import Embedding, UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_SQLITE_FTS = [
    "CREATE VIRTUAL TABLE chunks_fts USING fts5(lexical, content='chunks', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN "
    "INSERT INTO chunks_fts(rowid, lexical) VALUES (new.id, new.lexical); END",
    "CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN "
    "INSERT INTO chunks_fts(chunks_fts, rowid, lexical) VALUES ('delete', old.id, old.lexical); END",
    "CREATE TRIGGER chunks_fts_update AFTER UPDATE OF lexical ON chunks BEGIN "
    "INSERT INTO chunks_fts(chunks_fts, rowid, lexical) VALUES ('delete', old.id, old.lexical); "
    "INSERT INTO chunks_fts(rowid, lexical) VALUES (new.id, new.lexical); END",
]
_POSTGRES_FTS = [
    "ALTER TABLE chunks ADD COLUMN tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', lexical)) STORED",
    "CREATE INDEX ix_chunks_tsv ON chunks USING gin (tsv)",
]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    for column in ("documents", "chunks", "revision"):
        op.add_column("collections", sa.Column(column, sa.Integer, nullable=False, server_default="0"))
    op.create_table(
        "documents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("collection_id", sa.Integer, sa.ForeignKey("collections.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.String(2000), nullable=True),
        sa.Column("title", sa.String(1000), nullable=True),
        sa.Column("pages", sa.Integer, nullable=True),
        sa.Column("chunk_size", sa.Integer, nullable=False),
        sa.Column("chunk_overlap", sa.Integer, nullable=False),
        sa.Column("chunks", sa.Integer, nullable=False, server_default="0"),
        sa.Column("embedded", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("collection_id", "content_hash", name="uq_documents_content"),
    )
    op.create_table(
        "chunks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("document_id", sa.Integer, sa.ForeignKey("documents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("collection_id", sa.Integer, sa.ForeignKey("collections.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("title", sa.String(1000), nullable=True),
        sa.Column("page", sa.Integer, nullable=True),
        sa.Column("lexical", sa.Text, nullable=False),
        sa.Column("embedding", Embedding, nullable=True),
    )
    op.create_index("ix_chunks_document", "chunks", ["document_id", "idx"])
    for statement in _SQLITE_FTS if dialect == "sqlite" else _POSTGRES_FTS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE chunks_fts")
    op.drop_table("chunks")
    op.drop_table("documents")
    for column in ("documents", "chunks", "revision"):
        op.drop_column("collections", column)
