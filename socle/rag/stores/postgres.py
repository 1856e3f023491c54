"""The store at scale: PostgreSQL with pgvector (HNSW) and PostgreSQL full-text search.

Full text: a generated ``tsvector`` over the analysed text (GIN index), ranked by ``ts_rank``. Vectors:
pgvector's ``vector``, searched through an HNSW index on cosine distance built for the embedding
model's dimension. The caller's readable collections are part of the same SQL query; when they hold
few chunks the planner scans them exactly, otherwise it walks the HNSW index with a wide
``ef_search`` so that filtering leaves enough candidates.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pgvector.sqlalchemy import VECTOR
from sqlalchemy import cast, column, func, literal, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from socle.db.models import Chunk, Collection
from socle.identity.permissions import Principal
from socle.rag.collections import readable
from socle.rag.stores.base import Hit

_TSV = column("tsv")


class PostgresStore:
    def __init__(self, *, ef_search: int = 200) -> None:
        self._ef_search = ef_search

    async def prepare(self, session: AsyncSession, dimensions: int) -> None:
        await session.execute(text(
            f"CREATE INDEX IF NOT EXISTS ix_chunks_embedding_{dimensions} ON chunks USING hnsw "
            f"((embedding::vector({dimensions})) vector_cosine_ops) WHERE vector_dims(embedding) = {dimensions}"))

    async def lexical(self, session: AsyncSession, principal: Principal, collection_ids: Sequence[int],
                      terms: Sequence[str], limit: int) -> list[Hit]:
        if not terms or not collection_ids:
            return []
        query = func.to_tsquery("simple", literal(" | ".join(terms)))
        rank = func.ts_rank(_TSV, query, 1)
        statement = (select(Chunk.id, rank).join(Collection, Collection.id == Chunk.collection_id)
                     .where(_TSV.op("@@")(query), Chunk.collection_id.in_(collection_ids), readable(principal))
                     .order_by(rank.desc()).limit(limit))
        return [Hit(chunk_id, float(score)) for chunk_id, score in await session.execute(statement)]

    async def semantic(self, session: AsyncSession, principal: Principal, collection_ids: Sequence[int],
                       vector: np.ndarray, limit: int) -> list[Hit]:
        if not collection_ids:
            return []
        dimensions = len(vector)
        distance = cast(Chunk.embedding, VECTOR(dimensions)).cosine_distance(np.asarray(vector, dtype=np.float32))
        statement = (select(Chunk.id, distance).join(Collection, Collection.id == Chunk.collection_id)
                     .where(func.vector_dims(Chunk.embedding) == dimensions, Chunk.collection_id.in_(collection_ids),
                            readable(principal))
                     .order_by(distance).limit(limit))
        await session.execute(text(f"SET LOCAL hnsw.ef_search = {max(self._ef_search, limit)}"))
        return [Hit(chunk_id, 1.0 - float(d)) for chunk_id, d in await session.execute(statement)]


