"""Chunk stores behind one interface: SQLite (embedded default) and PostgreSQL with pgvector."""
from __future__ import annotations

from socle.rag.stores.base import ChunkStore, Hit

__all__ = ["ChunkStore", "Hit", "store_for"]


def store_for(dialect: str, **postgres: int) -> ChunkStore:
    """The store that goes with the metadata database: chunks live beside their documents. ``postgres``:
    the PostgreSQL store's search and index settings (``PostgresStore``)."""
    if dialect == "postgresql":
        from socle.rag.stores.postgres import PostgresStore

        return PostgresStore(**postgres)
    from socle.rag.stores.sqlite import SQLiteStore

    return SQLiteStore()
