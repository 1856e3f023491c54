"""The embedded store, in the same SQLite file as everything else.

Full text: FTS5 over the analysed text, ranked by ``bm25()``. Vectors: float32 blobs in the chunk rows,
searched exactly with NumPy. Each collection's matrix is read once and kept in memory, keyed by the
collection's ``revision`` (bumped in the transaction that changes its chunks), so a search reads from
the database only which collections the caller may read and their revisions. Exact search over
100,000 vectors of 384 dimensions is one matrix product of a few milliseconds: no approximate index
is needed at the embedded scale (the PostgreSQL store has HNSW for larger ones).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from cachetools import LRUCache
from sqlalchemy import column, delete, func, literal_column, or_, select, table, text
from sqlalchemy.ext.asyncio import AsyncSession

from socle.db.models import Chunk, Collection
from socle.identity.permissions import Principal
from socle.rag.collections import readable
from socle.rag.stores.base import Hit

_FTS = table("chunks_fts", column("rowid"))


@dataclass(frozen=True, slots=True)
class _Matrix:
    ids: np.ndarray  # int64, one per row
    documents: np.ndarray  # int64, each row's document
    vectors: np.ndarray  # float32, rows of unit length

    @property
    def nbytes(self) -> int:
        return int(self.ids.nbytes + self.documents.nbytes + self.vectors.nbytes)

    def only(self, rows: np.ndarray) -> _Matrix:
        return _Matrix(self.ids[rows], self.documents[rows], self.vectors[rows])


class SQLiteStore:
    def __init__(self, *, cache_bytes: int = 512 * 1024 * 1024) -> None:
        self._matrices: LRUCache[int, tuple[int, _Matrix]] = LRUCache(cache_bytes,
                                                                      getsizeof=lambda entry: entry[1].nbytes)

    async def prepare(self, session: AsyncSession, dimensions: int) -> None:
        return None

    async def lexical(self, session: AsyncSession, principal: Principal, collection_ids: Sequence[int],
                      terms: Sequence[str], limit: int, *, documents: Sequence[int] | None = None) -> list[Hit]:
        if not terms or not collection_ids:
            return []
        only = () if documents is None else (Chunk.document_id.in_(documents),)
        rank = func.bm25(literal_column("chunks_fts"))
        query = (select(Chunk.id, rank).select_from(_FTS)
                 .join(Chunk, Chunk.id == _FTS.c.rowid).join(Collection, Collection.id == Chunk.collection_id)
                 .where(literal_column("chunks_fts").match(" OR ".join(f'"{t}"' for t in terms)),
                        Chunk.collection_id.in_(collection_ids), readable(principal), *only)
                 .order_by(rank).limit(limit))
        return [Hit(chunk_id, -score) for chunk_id, score in await session.execute(query)]  # bm25(): lower is better

    async def semantic(self, session: AsyncSession, principal: Principal, collection_ids: Sequence[int],
                       vector: np.ndarray, limit: int, *, documents: Sequence[int] | None = None) -> list[Hit]:
        allowed = await session.execute(select(Collection.id, Collection.revision)
                                        .where(Collection.id.in_(collection_ids), readable(principal)))
        matrices = [await self._matrix(session, collection_id, revision) for collection_id, revision in allowed]
        if documents is not None:
            wanted = np.asarray(sorted(documents), dtype=np.int64)
            matrices = [m.only(np.isin(m.documents, wanted)) for m in matrices]
        matrices = [m for m in matrices if len(m.ids)]
        if not matrices:
            return []
        ids = np.concatenate([m.ids for m in matrices])
        scores = np.concatenate([m.vectors @ _unit(vector) for m in matrices])
        top = np.argpartition(-scores, limit - 1)[:limit] if len(scores) > limit else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [Hit(int(ids[i]), float(scores[i])) for i in top]

    async def erase(self, session: AsyncSession, *, collection_ids: Sequence[int] = (),
                    document_ids: Sequence[int] = ()) -> int:
        """The triggers write FTS5 "delete" entries, but the erased terms stay in the index's older segments
        until they are merged: ``optimize`` merges them all now (a rewrite of the index, as rare as erasures)."""
        if not collection_ids and not document_ids:
            return 0
        result = await session.execute(delete(Chunk).where(or_(Chunk.collection_id.in_(collection_ids),
                                                               Chunk.document_id.in_(document_ids))))
        await session.execute(text("INSERT INTO chunks_fts(chunks_fts) VALUES ('optimize')"))
        for collection_id in collection_ids:
            self._matrices.pop(collection_id, None)
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def _matrix(self, session: AsyncSession, collection_id: int, revision: int) -> _Matrix:
        cached = self._matrices.get(collection_id)
        if cached is not None and cached[0] == revision:
            return cached[1]
        rows = (await session.execute(select(Chunk.id, Chunk.embedding, Chunk.document_id)
                                      .where(Chunk.collection_id == collection_id, Chunk.embedding.isnot(None))
                                      .order_by(Chunk.id))).all()
        ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        vectors = np.frombuffer(b"".join(row[1] for row in rows), dtype="<f4").reshape(len(rows), -1) \
            if rows else np.empty((0, 0), np.float32)
        documents = np.fromiter((row[2] for row in rows), dtype=np.int64, count=len(rows))
        matrix = _Matrix(ids, documents, _unit(vectors))
        if matrix.nbytes <= self._matrices.maxsize:  # a larger one is searched without being kept
            self._matrices[collection_id] = (revision, matrix)
        return matrix


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.where(norms == 0, 1, norms)).astype(np.float32, copy=False)
