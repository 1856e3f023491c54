"""Chat turns on real SQLite and real PostgreSQL, with the platform's real services and an OpenAI-compatible
backend in the test's own event loop: the history the model is given, grounding on documents, what is kept
when a stream ends, breaks or is left, and that a turn never reaches into another user's conversation."""
from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.audit.service import AuditTrail
from socle.chat.conversations import ConversationService
from socle.chat.turns import ChatTurns
from socle.db import migrate
from socle.db.models import Chunk, Collection, Document, utcnow
from socle.db.session import create_engine, session_factory
from socle.errors import BackendError, InvalidRequest, NotFound, UpstreamRejected
from socle.identity.permissions import SYSTEM, Principal
from socle.identity.service import IdentityService
from socle.inference.registry import ModelRegistry
from socle.inference.service import InferenceService
from socle.jobs.queue import JobQueue
from socle.rag.answering import Answering
from socle.rag.collections import CollectionService
from socle.rag.conversation_files import ConversationFiles
from socle.rag.documents import DocumentService
from socle.rag.lexical import analyse
from socle.rag.search import SearchService
from socle.rag.stores import store_for
from socle.settings import Catalogue
from tests.support.fake_backend import Answer, Cut, Fail, FakeBackend, Stall

ANSWER = "Le délai est de trois semaines."


@dataclass
class World:
    turns: ChatTurns
    conversations: ConversationService
    collections: CollectionService
    backend: FakeBackend
    alice: Principal
    bob: Principal
    sessions: async_sessionmaker[AsyncSession]

    def sent(self, index: int = -1) -> list[dict[str, str]]:
        """The messages the model was given in a call (the latest by default)."""
        return self.backend.received[index].body["messages"]  # type: ignore[no-any-return]


@pytest.fixture(params=["sqlite", "postgres"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    url = (f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_database"))
    migrate.upgrade(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    audit = AuditTrail(sessions)
    identity = IdentityService(sessions, audit)
    users = [await identity.create_user(SYSTEM, email=f"agent-{secrets.token_hex(4)}@ministere.gouv.fr")
             for _ in range(2)]
    async with FakeBackend(default=Answer(ANSWER)) as backend:
        catalogue = Catalogue.model_validate({"models": [
            {"id": "chat", "type": "chat", "aliases": ["assistant"],
             "backends": [{"type": "openai", "url": backend.url, "timeout_s": 5}]},
            {"id": "embed", "type": "embeddings", "backends": [{"type": "openai", "url": backend.url}]},
            {"id": "demo", "type": "chat", "backends": [{"type": "openai", "url": backend.url, "timeout_s": 5}],
             "card": {"provider": "Essai", "license": "MIT", "intended_use": "Démonstration", "demonstration": True}},
        ]})
        registry = ModelRegistry(catalogue, health_interval_s=3600)
        await registry.start()
        inference = InferenceService(registry, max_tokens_limit=1024)
        store = store_for(engine.dialect.name)
        search = SearchService(sessions, store, inference, embedding_model=None)  # by words: no embedding call
        conversations = ConversationService(sessions)
        try:
            yield World(ChatTurns(conversations, inference, Answering(search, inference),
                                  ConversationFiles(sessions, DocumentService(sessions, JobQueue(sessions),
                                                                              tmp_path / "files", max_bytes=1 << 20))),
                        conversations,
                        CollectionService(sessions, audit), backend,
                        await identity.principal_of(users[0].id), await identity.principal_of(users[1].id), sessions)
        finally:
            await registry.close()
            await engine.dispose()


async def _read(pieces: AsyncIterator[str]) -> list[str]:
    async with aclosing(pieces):
        return [piece async for piece in pieces]


async def test_a_turn_is_answered_and_kept_and_the_next_one_is_given_the_history(world: World) -> None:
    alice = world.alice
    turn = await world.turns.take(alice, "Quel est le délai\npour un passeport ?", model="chat")
    assert turn.conversation.title == "Quel est le délai pour un passeport ?"
    assert (turn.question.role, turn.question.content) == ("user", "Quel est le délai\npour un passeport ?")
    assert turn.sources is None
    pieces = await _read(turn.text())
    assert "".join(pieces) == turn.content == ANSWER + " "  # the backend's words, as they came
    assert turn.answer is not None and turn.answer.content == turn.content and turn.answer.model == "chat"
    assert world.sent() == [{"role": "user", "content": "Quel est le délai\npour un passeport ?"}]

    # the next turn names only the conversation: its model and its history come from the database
    second = await world.turns.take(alice, "Et pour une carte d'identité ?", conversation_id=turn.conversation.id)
    answer = await second.complete()
    assert second.conversation.id == turn.conversation.id and answer.model == "chat"
    assert world.sent() == [{"role": "user", "content": "Quel est le délai\npour un passeport ?"},
                            {"role": "assistant", "content": ANSWER + " "},
                            {"role": "user", "content": "Et pour une carte d'identité ?"}]
    _, messages = await world.conversations.messages(alice, turn.conversation.id)
    assert [(m.role, m.id) for m in messages] == [("user", turn.question.id), ("assistant", turn.answer.id),
                                                  ("user", second.question.id), ("assistant", answer.id)]
    assert [c.id for c in await world.conversations.list(alice)] == [turn.conversation.id]


async def test_another_users_conversation_is_not_found_and_nothing_reaches_the_model(world: World) -> None:
    mine = await (await world.turns.take(world.alice, "Une question à moi", model="chat")).complete()
    calls = len(world.backend.received)
    with pytest.raises(NotFound):
        await world.turns.take(world.bob, "Que disait-elle ?", model="chat", conversation_id=mine.conversation_id)
    assert len(world.backend.received) == calls
    assert await world.conversations.list(world.bob) == []
    _, messages = await world.conversations.messages(world.alice, mine.conversation_id)
    assert len(messages) == 2


async def test_a_refusal_before_the_first_token_keeps_nothing(world: World) -> None:
    world.backend.script(Fail(500), Fail(400, "contexte trop long"))
    with pytest.raises(BackendError):
        await world.turns.take(world.alice, "Bonjour", model="chat")
    with pytest.raises(UpstreamRejected):
        await world.turns.take(world.alice, "Bonjour", model="chat")
    assert await world.conversations.list(world.alice) == []

    turn = await world.turns.take(world.alice, "Bonjour", model="chat")
    await turn.complete()
    world.backend.script(Fail(500))
    with pytest.raises(BackendError):  # a turn in a kept conversation: the question is not kept either
        await world.turns.take(world.alice, "Encore ?", conversation_id=turn.conversation.id)
    _, messages = await world.conversations.messages(world.alice, turn.conversation.id)
    assert [m.content for m in messages] == ["Bonjour", ANSWER + " "]


async def test_a_stream_that_breaks_keeps_what_was_written(world: World) -> None:
    world.backend.script(Cut(after=2, text="Trois semaines environ, selon la mairie."))
    turn = await world.turns.take(world.alice, "Quel délai ?", model="chat")
    pieces: list[str] = []
    with pytest.raises(BackendError):
        async with aclosing(turn.text()) as stream:
            async for piece in stream:
                pieces.append(piece)
    assert pieces == ["Trois ", "semaines "]
    assert turn.answer is not None and turn.answer.content == "Trois semaines "
    _, messages = await world.conversations.messages(world.alice, turn.conversation.id)
    assert [(m.role, m.content) for m in messages] == [("user", "Quel délai ?"), ("assistant", "Trois semaines ")]


@pytest.mark.parametrize("waiting_on", ["the model", "the caller"])
async def test_a_caller_that_leaves_stops_the_model_and_the_answer_so_far_is_kept(world: World,
                                                                                 waiting_on: str) -> None:
    world.backend.script(Stall(after=2, text="mot0 mot1 mot2 mot3"))  # then writes nothing until the caller goes
    turn = await world.turns.take(world.alice, "Racontez-moi tout.", model="chat")
    read: list[str] = []
    arrived = asyncio.Event()

    async def reader() -> None:
        async with aclosing(turn.text()) as stream:
            async for piece in stream:
                read.append(piece)
                if waiting_on == "the caller" or len(read) == 2:
                    arrived.set()
                if waiting_on == "the caller":
                    await asyncio.Event().wait()  # a reader that goes no further: cancelled here, not in the stream

    task = asyncio.create_task(reader())
    await arrived.wait()
    task.cancel()  # the caller went away
    with pytest.raises(asyncio.CancelledError):
        await task
    assert turn.answer is not None and turn.answer.content == "".join(read)  # saved despite the cancellation
    assert read == (["mot0 "] if waiting_on == "the caller" else ["mot0 ", "mot1 "])
    call = world.backend.received[-1]
    await world.backend.wait_until(lambda: call.outcome == "abandoned")  # the model was stopped
    assert await turn.close() is turn.answer  # closing again changes nothing
    _, messages = await world.conversations.messages(world.alice, turn.conversation.id)
    assert [m.content for m in messages] == ["Racontez-moi tout.", "".join(read)]


async def test_a_question_about_documents_is_grounded_in_readable_excerpts_kept_as_sources(world: World) -> None:
    alice, bob = world.alice, world.bob
    collection = await world.collections.create(alice, name="Démarches")
    await _add_document(world, collection.id, "passeport.md", [
        "La demande de passeport se fait en mairie ; le délai de délivrance est de trois semaines.",
        "La carte nationale d'identité est gratuite, sauf en cas de perte.",
    ])
    turn = await world.turns.take(alice, "Quel est le délai de délivrance du passeport ?", model="chat",
                                  collections=[collection.id])
    assert turn.sources is not None and turn.sources[0]["number"] == 1
    assert turn.sources[0]["document"] == "passeport.md" and "trois semaines" in turn.sources[0]["excerpt"]
    assert {(s["collection_id"], s["chunk"]) for s in turn.sources} <= {(collection.id, 0), (collection.id, 1)}
    answer = await turn.complete()
    prompt = world.sent()[-1]["content"]
    assert "[1] (passeport.md)" in prompt and "trois semaines" in prompt
    assert "Question : Quel est le délai de délivrance du passeport ?" in prompt
    assert answer.sources == turn.sources
    assert (await world.conversations.get(alice, turn.conversation.id)).collection_ids == [collection.id]
    # the history keeps the question as it was asked, not the prompt built around the excerpts
    follow = await world.turns.take(alice, "Et la carte d'identité ?", conversation_id=turn.conversation.id)
    await follow.complete()
    assert world.sent()[0] == {"role": "user", "content": "Quel est le délai de délivrance du passeport ?"}
    assert follow.sources is None
    assert (await world.conversations.get(alice, turn.conversation.id)).collection_ids == []

    calls = len(world.backend.received)
    with pytest.raises(NotFound):  # a private collection is not bob's to search
        await world.turns.take(bob, "Quel est le délai ?", model="chat", collections=[collection.id])
    assert len(world.backend.received) == calls and await world.conversations.list(bob) == []


async def test_a_search_that_finds_nothing_still_answers_and_says_so_in_its_sources(world: World) -> None:
    collection = await world.collections.create(world.alice, name="Vide")
    turn = await world.turns.take(world.alice, "Quel est le délai ?", model="chat", collections=[collection.id])
    assert turn.sources == []
    answer = await turn.complete()
    assert answer.sources == [] and world.sent()[-1]["content"] == "Quel est le délai ?"


async def test_what_a_turn_and_a_new_conversation_need(world: World) -> None:
    alice = world.alice
    with pytest.raises(InvalidRequest) as empty:
        await world.turns.take(alice, "  \n", model="chat")
    assert empty.value.param == "content"
    with pytest.raises(InvalidRequest) as no_model:
        await world.turns.take(alice, "Bonjour")
    assert no_model.value.param == "model"
    with pytest.raises(NotFound):
        await world.turns.take(alice, "Bonjour", model="inconnu")
    with pytest.raises(NotFound):
        await world.turns.start(alice, title="Essai", model="inconnu")
    with pytest.raises(InvalidRequest) as not_chat:
        await world.turns.start(alice, title="Essai", model="embed")
    assert not_chat.value.code == "model_not_supported"
    assert world.backend.received == [] and await world.conversations.list(alice) == []

    started = await world.turns.start(alice, title="  Passeport  ", model="assistant")
    assert (started.title, started.model, started.collection_ids) == ("Passeport", "chat", [])
    turn = await world.turns.take(alice, "Bonjour", conversation_id=started.id)  # its model, by default
    await turn.complete()
    assert world.backend.received[-1].body["model"] == "chat"
    assert (await world.conversations.get(alice, started.id)).title == "Passeport"  # a first turn keeps it


async def _add_document(world: World, collection_id: int, name: str, passages: list[str]) -> None:
    """A document as ingestion leaves it: ready, its passages indexed for search by words."""
    now = utcnow()
    async with world.sessions() as session, session.begin():
        document = Document(collection_id=collection_id, name=name, content_hash=secrets.token_hex(32),
                            size_bytes=sum(len(p) for p in passages), status="ready", chunk_size=2048,
                            chunk_overlap=0, chunks=len(passages), embedded=0, created_at=now, updated_at=now)
        session.add(document)
        await session.flush()
        for index, passage in enumerate(passages):
            session.add(Chunk(document_id=document.id, collection_id=collection_id, idx=index, text=passage,
                              lexical=analyse(passage)))
        await session.execute(update(Collection).where(Collection.id == collection_id).values(
            documents=Collection.documents + 1, chunks=Collection.chunks + len(passages),
            revision=Collection.revision + 1))


async def test_an_edited_question_and_an_answer_written_again_are_given_their_branch_only(world: World) -> None:
    alice = world.alice
    first = await world.turns.take(alice, "Première question", model="chat")
    await first.complete()
    second = await world.turns.take(alice, "Deuxième question", conversation_id=first.conversation.id)
    await second.complete()
    edited = await world.turns.take(alice, "Deuxième question, reformulée", conversation_id=first.conversation.id,
                                    edit=second.question.id)
    answer = await edited.complete()
    assert world.sent() == [{"role": "user", "content": "Première question"},
                            {"role": "assistant", "content": ANSWER + " "},
                            {"role": "user", "content": "Deuxième question, reformulée"}]
    assert first.answer is not None and edited.question.parent_id == first.answer.id
    again = await world.turns.take(alice, "", conversation_id=first.conversation.id, again=answer.id)
    rewritten = await again.complete()
    assert again.question.id == edited.question.id and rewritten.parent_id == edited.question.id
    assert world.sent()[-1] == {"role": "user", "content": "Deuxième question, reformulée"}
    assert len(world.sent()) == 3  # the first version of the second question is not in it
    _, messages = await world.conversations.messages(alice, first.conversation.id)
    assert [m.id for m in messages][-2:] == [edited.question.id, rewritten.id]
    with pytest.raises(InvalidRequest):  # a question is not written again, an answer is not edited
        await world.turns.take(alice, "", conversation_id=first.conversation.id, again=edited.question.id)
    with pytest.raises(InvalidRequest):
        await world.turns.take(alice, "x", conversation_id=first.conversation.id, edit=rewritten.id)
    with pytest.raises(NotFound):  # nor someone else's
        await world.turns.take(world.bob, "", conversation_id=first.conversation.id, again=rewritten.id)
