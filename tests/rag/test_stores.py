"""Both chunk stores on real databases: the caller's readable collections bound every search, by words
and by vectors, exact or through PostgreSQL's HNSW index."""
from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.db import migrate
from socle.db.models import Chunk, Collection, Document, Role, User, utcnow
from socle.db.session import create_engine, session_factory
from socle.identity.permissions import Principal
from socle.rag.lexical import analyse, query_terms
from socle.rag.stores import ChunkStore, store_for
from socle.rag.stores.postgres import PostgresStore, candidate_terms

DIMENSIONS = 384


@dataclass
class World:
    sessions: async_sessionmaker[AsyncSession]
    store: ChunkStore
    readers: dict[str, Principal]
    collections: dict[str, int]
    vectors: dict[int, np.ndarray]  # chunk → its vector


def _principal(user_id: int) -> Principal:
    return Principal(user_id=user_id, email=f"{user_id}@x", role="user", permissions=frozenset())


async def _add(session: AsyncSession, collection_id: int, texts: list[str], rng: np.random.Generator) -> dict:
    now = utcnow()
    document = Document(collection_id=collection_id, name="doc.md", content_hash=secrets.token_hex(32),
                        size_bytes=1, status="ready", chunk_size=2048, chunk_overlap=0, chunks=len(texts),
                        embedded=len(texts), created_at=now, updated_at=now)
    session.add(document)
    await session.flush()
    vectors = {}
    for index, passage in enumerate(texts):
        vector = rng.normal(size=DIMENSIONS).astype(np.float32)
        chunk = Chunk(document_id=document.id, collection_id=collection_id, idx=index, text=passage,
                      lexical=analyse(passage), embedding=vector)
        session.add(chunk)
        await session.flush()
        vectors[chunk.id] = vector
    await session.execute(update(Collection).where(Collection.id == collection_id).values(
        chunks=Collection.chunks + len(texts), revision=Collection.revision + 1))
    return vectors


@pytest.fixture(params=["sqlite", "postgres"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'stores.db'}" if request.param == "sqlite" \
        else request.getfixturevalue("postgres_database")
    async for built in _world(url):
        yield built


@pytest.fixture
async def postgres_world(postgres_database: str) -> AsyncIterator[World]:
    async for built in _world(postgres_database):
        yield built


async def _world(url: str) -> AsyncIterator[World]:
    """Two users, each with a private collection of 30 chunks with random vectors."""
    migrate.upgrade(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    rng = np.random.default_rng(7)
    store = store_for(engine.dialect.name)
    async with sessions() as session, session.begin():
        role = await session.scalar(select(Role.id).where(Role.name == "user"))
        users = [User(email=f"{secrets.token_hex(4)}@x.gouv.fr", role_id=role) for _ in range(2)]
        session.add_all(users)
        await session.flush()
        mine = Collection(name="mine", owner_id=users[0].id, visibility="private")
        theirs = Collection(name="theirs", owner_id=users[1].id, visibility="private")
        session.add_all([mine, theirs])
        await session.flush()
        vectors = await _add(session, mine.id, [f"passeport délai numéro {i}" for i in range(30)], rng)
        vectors |= await _add(session, theirs.id, [f"passeport secret numéro {i}" for i in range(30)], rng)
        await store.prepare(session, DIMENSIONS)
    yield World(sessions, store, {"me": _principal(users[0].id), "them": _principal(users[1].id)},
                {"mine": mine.id, "theirs": theirs.id}, vectors)
    await engine.dispose()


async def _owners(world: World, chunk_ids: list[int]) -> set[int]:
    async with world.sessions() as session:
        return set(await session.scalars(select(Chunk.collection_id).where(Chunk.id.in_(chunk_ids))))


async def test_lexical_search_stays_in_readable_collections(world: World) -> None:
    both = list(world.collections.values())
    async with world.sessions() as session, session.begin():
        hits = await world.store.lexical(session, world.readers["me"], both, query_terms("passeport secret"), 100)
    assert len(hits) == 30 and await _owners(world, [h.chunk_id for h in hits]) == {world.collections["mine"]}
    async with world.sessions() as session, session.begin():
        assert await world.store.lexical(session, world.readers["me"], [world.collections["theirs"]],
                                         query_terms("secret"), 10) == []


async def test_vector_search_finds_the_nearest_readable_chunk(world: World) -> None:
    await _nearest_readable(world, world.store)  # exact search: few chunks


async def test_hnsw_search_finds_the_nearest_readable_chunk(postgres_world: World) -> None:
    await _nearest_readable(postgres_world, PostgresStore(exact_below=0), index_only=True)


async def test_a_small_share_of_the_index_is_searched_exactly(postgres_world: World) -> None:
    """HNSW returns ``ef_search`` chunks of all collections before the caller's are kept: half of 10 would be
    theirs. The store scans their collection exactly instead, and every hit asked for comes back, even
    where the planner would walk the index (no sort: the index's order or nothing)."""
    world = postgres_world
    store = PostgresStore(exact_below=0, ef_search=10)
    async with world.sessions() as session:
        mine = set(await session.scalars(select(Chunk.id).where(Chunk.collection_id == world.collections["mine"])))
    for target in [*world.vectors][::7]:
        async with world.sessions() as session, session.begin():
            for setting in ("enable_seqscan", "enable_sort"):
                await session.execute(text(f"SET LOCAL {setting} = off"))
            hits = await store.semantic(session, world.readers["me"], [world.collections["mine"]],
                                        world.vectors[target], 10)
        nearest = sorted(mine, key=lambda c: -_cosine(world.vectors[c], world.vectors[target]))[:10]
        assert [h.chunk_id for h in hits] == nearest


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


async def test_lexical_ranking_is_bounded_and_breaks_ties_by_id(postgres_world: World) -> None:
    """Past ``lexical_candidates`` matches, the chunks holding the rare term are ranked, not every match;
    equal ranks come in id order, the same at every run."""
    world = postgres_world
    async with world.sessions() as session, session.begin():
        rare = await _add(session, world.collections["mine"], ["passeport rarissime"], np.random.default_rng(3))
    question = query_terms("passeport délai rarissime")
    for store in (PostgresStore(lexical_candidates=20), PostgresStore()):
        async with world.sessions() as session, session.begin():
            hits = await store.lexical(session, world.readers["me"], list(world.collections.values()), question, 5)
        assert hits[0].chunk_id == next(iter(rare))
        tied = [h for h in hits[1:] if h.score == hits[1].score]
        assert len(tied) > 1 and [h.chunk_id for h in tied] == sorted(h.chunk_id for h in tied)


def test_candidate_terms_take_the_rarest_within_the_bound() -> None:
    assert candidate_terms({"a": 5, "b": 3}, 10) is None
    assert candidate_terms({"commun": 900, "rare": 4, "moyen": 50, "frequent": 300}, 100) == \
        (["rare", "moyen"], ["commun", "frequent"])
    assert candidate_terms({"commun": 900, "frequent": 300}, 100) == ([], ["commun", "frequent"])


async def _nearest_readable(world: World, store: ChunkStore, *, index_only: bool = False) -> None:
    """``index_only``: the planner may not scan the table, as with a large collection."""
    both = list(world.collections.values())
    async with world.sessions() as session:
        mine = list(await session.scalars(select(Chunk.id).where(Chunk.collection_id == world.collections["mine"])))
        theirs = list(await session.scalars(select(Chunk.id).where(Chunk.collection_id == world.collections["theirs"])))
    for target in (mine[3], theirs[5]):
        async with world.sessions() as session, session.begin():
            if index_only:
                await session.execute(text("SET LOCAL enable_seqscan = off"))
            hits = await store.semantic(session, world.readers["me"], both, world.vectors[target], 10)
        assert len(hits) == 10 and await _owners(world, [h.chunk_id for h in hits]) == {world.collections["mine"]}
        if target in mine:
            assert hits[0].chunk_id == target and hits[0].score == pytest.approx(1.0, abs=1e-4)
        else:
            assert target not in {h.chunk_id for h in hits}


async def test_new_vectors_are_searched_after_the_collection_changes(world: World) -> None:
    both = list(world.collections.values())
    async with world.sessions() as session, session.begin():
        await world.store.semantic(session, world.readers["me"], both, np.ones(DIMENSIONS, np.float32), 5)  # cached
    async with world.sessions() as session, session.begin():
        added = await _add(session, world.collections["mine"], ["nouveau passage"], np.random.default_rng(99))
    (chunk_id, vector), = added.items()
    async with world.sessions() as session, session.begin():
        hits = await world.store.semantic(session, world.readers["me"], both, vector, 1)
    assert hits[0].chunk_id == chunk_id
