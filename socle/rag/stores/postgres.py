"""The store at scale: PostgreSQL with pgvector (HNSW) and PostgreSQL full-text search.

Full text: a generated ``tsvector`` over the analysed text (GIN index), ranked by ``ts_rank`` weighted by
each term's rarity (BM25's idea). Ranking every chunk that holds a common word costs seconds in a
collection of a million chunks, so past ``lexical_candidates`` matches the ranking is bounded: the
chunks holding the rarest terms, plus those holding all the others, are ranked, not every match
(bench/rag_scale.py).

Vectors: pgvector's ``vector``, searched through an HNSW index on cosine distance built for the
embedding model's dimension (``hnsw_m``, ``hnsw_ef_construction``). The caller's readable collections
are part of the same SQL query. They are scanned exactly when they hold fewer than ``exact_below``
chunks (e5's vectors crowd in a narrow cone, and an HNSW graph built as chunks arrive missed answers
there: dev set recall@10 0.883 against 0.910 exact), or when they are so small a share of all chunks
that the ``ef_search`` candidates HNSW returns before the collection filter would hold too few of theirs.
Beyond, the index is walked with ``ef_search`` 1000, pgvector's maximum.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pgvector.sqlalchemy import VECTOR
from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Select,
    Text,
    bindparam,
    cast,
    column,
    delete,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    union,
)
from sqlalchemy.ext.asyncio import AsyncSession

from socle.db.models import Chunk, Collection
from socle.identity.permissions import Principal
from socle.rag.collections import readable
from socle.rag.stores.base import Hit

_TSV = column("tsv")
# HNSW filtered by collection: the walk returns ``ef_search`` chunks of all collections; the caller's
# share of them must be this many times the hits asked for, else their collections are scanned exactly
# (with an ``ef_search`` too small for that, their collections must hold nearly every chunk).
CANDIDATES_PER_HIT = 4
_MOST_SHARE = 0.9
# ANALYZE's most common lexemes of the table and their share of its rows (pg_stats), for terms too common
# in the caller's collections to count.
_TABLE_SHARES = text(
    "SELECT e.lexeme, e.share FROM pg_stats s, "
    "unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) AS e(lexeme, share) "
    "WHERE s.schemaname = current_schema() AND s.tablename = 'chunks' AND s.attname = 'tsv' "
    "AND e.lexeme = ANY(:terms)").bindparams(bindparam("terms", type_=ARRAY(Text)))


class PostgresStore:
    def __init__(self, *, ef_search: int = 1000, exact_below: int = 20_000, lexical_candidates: int = 2_000,
                 hnsw_m: int = 16, hnsw_ef_construction: int = 64) -> None:
        self._ef_search = ef_search
        self._exact_below = exact_below
        self._lexical_candidates = lexical_candidates
        self._hnsw = f"m = {int(hnsw_m)}, ef_construction = {int(hnsw_ef_construction)}"

    async def prepare(self, session: AsyncSession, dimensions: int) -> None:
        """The index's parameters count when it is created: an existing one keeps those it was built with."""
        await session.execute(text(
            f"CREATE INDEX IF NOT EXISTS ix_chunks_embedding_{dimensions} ON chunks USING hnsw "
            f"((embedding::vector({dimensions})) vector_cosine_ops) WITH ({self._hnsw}) "
            f"WHERE vector_dims(embedding) = {dimensions}"))

    async def lexical(self, session: AsyncSession, principal: Principal, collection_ids: Sequence[int],
                      terms: Sequence[str], limit: int, *, documents: Sequence[int] | None = None) -> list[Hit]:
        """BM25's idea on PostgreSQL: ``ts_rank`` knows term frequency and length but not how rare a term
        is, so each term's rank is weighted by its inverse document frequency among the chunks the caller
        may read (on the dev set: hybrid R@10 0.957 → 0.970, MRR@10 0.803 → 0.830). Each term's chunks
        are counted up to ``lexical_candidates``; a term with more is weighted by its share of the whole
        table (ANALYZE's statistics), and the ranking takes the bounded candidates of ``candidate_terms``."""
        if not terms or not collection_ids:
            return []
        cap = self._lexical_candidates
        scope = (Chunk.collection_id.in_(collection_ids), readable(principal),
                 *(() if documents is None else (Chunk.document_id.in_(documents),)))

        def chunks(tsquery: str, bound: int | None = None) -> Select[tuple[int]]:
            statement = (select(Chunk.id).join(Collection, Collection.id == Chunk.collection_id)
                         .where(_TSV.op("@@")(func.to_tsquery("simple", literal(tsquery))), *scope))
            return statement if bound is None else statement.limit(bound)

        # Custom plans: a term's selectivity decides between the GIN index and a scan that stops early.
        await session.execute(select(func.set_config("plan_cache_mode", "force_custom_plan", True)))
        total = (select(func.coalesce(func.sum(Collection.chunks), 0))
                 .where(Collection.id.in_(collection_ids), readable(principal)).scalar_subquery())
        counts = [select(func.count()).select_from(chunks(term, cap + 1).subquery()).scalar_subquery()
                  for term in terms]
        total, *frequencies = (await session.execute(select(total, *counts))).one()
        if not total or not any(frequencies):
            return []
        if common := [term for term, df in zip(terms, frequencies) if df > cap]:
            shares = dict((await session.execute(_TABLE_SHARES, {"terms": common})).all())
            frequencies = [max(df, round(shares.get(term, 0.0) * total)) if df > cap else df
                           for term, df in zip(terms, frequencies)]
        present = {term: df for term, df in zip(terms, frequencies) if df}
        rank = sum((literal(_idf(total, df)) * func.ts_rank(_TSV, func.to_tsquery("simple", literal(term)), 1)
                    for term, df in present.items()), literal(0.0))
        candidates = candidate_terms(present, cap)
        if candidates is None:  # few matches: rank them all
            where: ColumnElement[bool] = Chunk.id.in_(chunks(" | ".join(present)))
        else:
            rare, rest = candidates
            parts = [chunks(" & ".join(rest), cap), chunks(" | ".join(rest), limit)]
            where = Chunk.id.in_(union(*parts, *([chunks(" | ".join(rare))] if rare else [])))
        statement = select(Chunk.id, rank).where(where).order_by(rank.desc(), Chunk.id).limit(limit)
        return [Hit(chunk_id, float(score)) for chunk_id, score in await session.execute(statement)]

    async def semantic(self, session: AsyncSession, principal: Principal, collection_ids: Sequence[int],
                       vector: np.ndarray, limit: int, *, documents: Sequence[int] | None = None) -> list[Hit]:
        if not collection_ids:
            return []
        dimensions = int(len(vector))
        embedding = cast(Chunk.embedding, VECTOR(dimensions))
        query = bindparam("query_vector", np.asarray(vector, dtype=np.float32), type_=VECTOR(dimensions))
        mine = Collection.id.in_(collection_ids) & readable(principal)
        searched, stored = (await session.execute(select(
            func.coalesce(func.sum(Collection.chunks).filter(mine), 0),
            func.coalesce(func.sum(Collection.chunks), 0)))).one()
        ef_search = min(max(self._ef_search, limit), 1000)
        # Few chunks, or too small a share of the index's: the function form, which no index serves, is an
        # exact scan of the caller's chunks through the collection index.
        share = min(_MOST_SHARE, limit * CANDIDATES_PER_HIT / ef_search)  # of all chunks, the least to walk
        # A metadata filter leaves few of the collections' chunks: the index would find too few of theirs.
        exact = documents is not None or searched < self._exact_below or searched < stored * share
        distance = func.cosine_distance(embedding, query) if exact else embedding.cosine_distance(query)
        indexed = func.vector_dims(Chunk.embedding) == literal_column(str(dimensions))  # as the index says it
        statement = (select(Chunk.id, distance).join(Collection, Collection.id == Chunk.collection_id)
                     .where(indexed, Chunk.collection_id.in_(collection_ids), readable(principal),
                            *(() if documents is None else (Chunk.document_id.in_(documents),)))
                     .order_by(distance).limit(limit))  # only the distance: the HNSW index orders by it
        # For this transaction: a generic plan of the prepared statement cannot see that the partial HNSW
        # index applies; and a wide search, so that filtering by collection leaves enough candidates.
        await session.execute(select(func.set_config("plan_cache_mode", "force_custom_plan", True),
                                     func.set_config("hnsw.ef_search", str(ef_search), True)))
        return [Hit(chunk_id, 1.0 - float(d)) for chunk_id, d in await session.execute(statement)]

    async def erase(self, session: AsyncSession, *, collection_ids: Sequence[int] = (),
                    document_ids: Sequence[int] = ()) -> int:
        """The ``tsvector`` is a column of the row: it goes with it (vacuum reclaims the dead rows' space)."""
        if not collection_ids and not document_ids:
            return 0
        result = await session.execute(delete(Chunk).where(or_(Chunk.collection_id.in_(collection_ids),
                                                               Chunk.document_id.in_(document_ids))))
        return int(result.rowcount)  # type: ignore[attr-defined]


def candidate_terms(frequencies: dict[str, int], cap: int) -> tuple[list[str], list[str]] | None:
    """What a lexical search ranks when its terms' chunks number more than ``cap``: every chunk holding one
    of the ``rare`` terms (the rarest, up to ``cap`` chunks in all), plus up to ``cap`` chunks holding all
    the ``rest`` and a few holding any of them; ``None``: ``cap`` chunks or fewer, rank every match. A
    chunk holding none of the rare terms nor all the others ranks below them (its terms are common ones)."""
    if sum(frequencies.values()) <= cap:
        return None
    rare: list[str] = []
    budget = cap
    for term, df in sorted(frequencies.items(), key=lambda item: (item[1], item[0])):
        if df > budget:
            break
        rare.append(term)
        budget -= df
    return rare, [term for term in frequencies if term not in rare]


def _idf(chunks: int, with_term: int) -> float:
    """BM25's inverse document frequency: rare terms weigh more."""
    return math.log(1 + (chunks - with_term + 0.5) / (with_term + 0.5))
