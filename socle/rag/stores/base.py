"""The interface of a chunk store: full-text and vector search over the collections a caller may read.

Chunks are written with the ORM by the ingestion (the same rows on every store; the full-text index
follows in the same transaction). They are erased through the store (:meth:`ChunkStore.erase`), which
knows where else an engine keeps their words. What differs between stores is how they search, and every search
takes the caller: the store restricts its query itself to ``collection_ids`` the caller may read
(``socle.rag.collections.readable``), so nothing unreadable is ever ranked, let alone returned. A search
given ``documents`` (those a metadata filter left) ranks only their chunks.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from socle.identity.permissions import Principal


@dataclass(frozen=True, slots=True)
class Hit:
    chunk_id: int
    score: float  # higher is better; comparable within one method only


class ChunkStore(Protocol):
    async def prepare(self, session: AsyncSession, dimensions: int) -> None:
        """Create what searching vectors of this size needs (an index), if missing."""

    async def lexical(self, session: AsyncSession, principal: Principal, collection_ids: Sequence[int],
                      terms: Sequence[str], limit: int, *, documents: Sequence[int] | None = None) -> list[Hit]:
        """Chunks matching any of the analysed ``terms``, best BM25-style rank first."""

    async def semantic(self, session: AsyncSession, principal: Principal, collection_ids: Sequence[int],
                       vector: np.ndarray, limit: int, *, documents: Sequence[int] | None = None) -> list[Hit]:
        """Embedded chunks nearest ``vector`` by cosine similarity, nearest first."""

    async def erase(self, session: AsyncSession, *, collection_ids: Sequence[int] = (),
                    document_ids: Sequence[int] = ()) -> int:
        """Delete the chunks of these collections and documents with their vectors and full-text entries,
        in the caller's transaction, leaving none of their terms in an index; the number of chunks."""
