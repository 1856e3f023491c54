"""Conversations on real SQLite and real PostgreSQL: each is its owner's alone, and ratings add up."""
from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from socle.audit.service import AuditTrail
from socle.chat.conversations import ConversationService, title_of
from socle.db import migrate
from socle.db.session import create_engine, session_factory
from socle.errors import InvalidRequest, NotFound
from socle.identity.permissions import SYSTEM, Principal
from socle.identity.service import IdentityService


@pytest.fixture(params=["sqlite", "postgres"])
async def services(request: pytest.FixtureRequest,
                   tmp_path: Path) -> AsyncIterator[tuple[ConversationService, Principal, Principal, Principal]]:
    """The service, two users and an admin (the PostgreSQL database is shared by the run: new users each time)."""
    url = (f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_database"))
    migrate.upgrade(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    identity = IdentityService(sessions, AuditTrail(sessions))
    principals = []
    for role in ("user", "user", "admin"):
        user = await identity.create_user(SYSTEM, email=f"agent-{secrets.token_hex(4)}@ministere.gouv.fr", role=role)
        principals.append(await identity.principal_of(user.id))
    yield ConversationService(sessions), principals[0], principals[1], principals[2]
    await engine.dispose()


async def test_a_conversation_is_its_owners_alone(services: tuple[ConversationService, Principal, Principal,
                                                                   Principal]) -> None:
    chats, alice, bob, admin = services
    conversation = await chats.start(alice, title=title_of("Quel est le délai ?\n"), model="m", collection_ids=[3, 3])
    assert (conversation.title, conversation.collection_ids) == ("Quel est le délai ?", [3])
    await chats.add(alice, conversation.id, role="user", content="Quel est le délai ?")
    answer = await chats.add(alice, conversation.id, role="assistant", content="Trois semaines.", model="m",
                             sources=[{"number": 1, "document": "passeport.pdf", "excerpt": "trois semaines"}])

    for intruder in (bob, admin):  # not even an admin reads someone else's conversation
        assert await chats.list(intruder) == []
        for attempt in (chats.get(intruder, conversation.id), chats.messages(intruder, conversation.id),
                        chats.rename(intruder, conversation.id, "volé"), chats.delete(intruder, conversation.id),
                        chats.add(intruder, conversation.id, role="user", content="intrus"),
                        chats.rate(intruder, answer.id, 1), chats.comment(intruder, answer.id, "intrus")):
            with pytest.raises(NotFound):
                await attempt

    _, messages = await chats.messages(alice, conversation.id)
    assert [(m.role, m.content) for m in messages] == [("user", "Quel est le délai ?"),
                                                       ("assistant", "Trois semaines.")]
    assert messages[1].sources == [{"number": 1, "document": "passeport.pdf", "excerpt": "trois semaines"}]
    assert messages[1].rating is None and messages[1].rating_comment is None
    assert [c.id for c in await chats.list(alice)] == [conversation.id]

    with pytest.raises(NotFound):  # a question is not rated: only answers are
        await chats.rate(alice, messages[0].id, 1)
    with pytest.raises(InvalidRequest):
        await chats.rate(alice, answer.id, 5)
    with pytest.raises(InvalidRequest):
        await chats.rename(alice, conversation.id, "   ")

    renamed = await chats.rename(alice, conversation.id, "  Passeport  ")
    assert renamed.title == "Passeport"
    await chats.delete(alice, conversation.id)
    with pytest.raises(NotFound):
        await chats.get(alice, conversation.id)


async def test_history_keeps_the_latest_turns_that_fit(services: tuple[ConversationService, Principal, Principal,
                                                                        Principal]) -> None:
    chats, alice, _, _ = services
    conversation = await chats.start(alice, title="Longue", model="m")
    for turn in range(4):
        await chats.add(alice, conversation.id, role="user", content=f"question {turn} " + "x" * 100)
        await chats.add(alice, conversation.id, role="assistant", content=f"réponse {turn} " + "y" * 100)
    history = await chats.history(alice, conversation.id, max_chars=500)
    assert [m["content"][:10] for m in history] == ["question 2", "réponse 2 ", "question 3", "réponse 3 "]


async def test_ratings_per_day_and_model(services: tuple[ConversationService, Principal, Principal,
                                                         Principal]) -> None:
    chats, alice, bob, admin = services
    model = f"modele-{secrets.token_hex(3)}"  # the PostgreSQL database holds other tests' ratings
    answers = []
    for user, ratings in ((alice, [1, 1, -1]), (bob, [-1])):
        conversation = await chats.start(user, title="Avis", model=model)
        for rating in ratings:
            answer = await chats.add(user, conversation.id, role="assistant", content="…", model=model)
            answers.append(await chats.rate(user, answer.id, rating))
    commented = await chats.comment(alice, answers[0].id, "  Précis et sourcé. ")
    assert (commented.rating, commented.rating_comment) == (1, "Précis et sourcé.")  # the thumb stays

    mine = [r for r in await chats.ratings(alice) if r.model == model]
    assert [(r.up, r.down) for r in mine] == [(2, 1)]
    everyone = [r for r in await chats.ratings(admin) if r.model == model]
    assert [(r.up, r.down) for r in everyone] == [(2, 2)]
    assert len(everyone[0].day) == 10  # an ISO date


async def test_versions_of_a_message_are_branches_and_only_the_one_shown_is_history(
        services: tuple[ConversationService, Principal, Principal, Principal]) -> None:
    chats, alice, bob, _ = services
    conversation = await chats.start(alice, title="Passeport", model="m")
    first = await chats.add(alice, conversation.id, role="user", content="Délai d'un passeport ?")
    answer = await chats.add(alice, conversation.id, role="assistant", content="Trois semaines.")
    follow = await chats.add(alice, conversation.id, role="user", content="Et à Lyon ?")
    await chats.add(alice, conversation.id, role="assistant", content="Deux semaines.")
    # the follow-up edited: a new version after the same answer; then the first answer written again
    edited = await chats.add(alice, conversation.id, role="user", content="Et à Marseille ?", parent_id=answer.id)
    again = await chats.add(alice, conversation.id, role="assistant", content="Vingt jours.", parent_id=first.id)
    assert (first.parent_id, answer.parent_id, follow.parent_id, edited.parent_id) == (None, first.id, answer.id,
                                                                                      answer.id)

    _, shown = await chats.branch(alice, conversation.id)  # the newest branch: the answer written again
    assert [(s.message.content, s.version, s.versions) for s in shown] == [("Délai d'un passeport ?", 1, 1),
                                                                           ("Vingt jours.", 2, 2)]
    assert (shown[1].message.id, shown[1].previous, shown[1].next) == (again.id, answer.id, None)
    assert [m["content"] for m in await chats.history(alice, conversation.id, max_chars=1000)] == [
        "Délai d'un passeport ?", "Vingt jours."]

    await chats.switch(alice, conversation.id, answer.id)  # back to the first answer, and its newest follow-up
    _, shown = await chats.branch(alice, conversation.id)
    assert [(s.message.content, s.version, s.versions) for s in shown] == [
        ("Délai d'un passeport ?", 1, 1), ("Trois semaines.", 1, 2), ("Et à Marseille ?", 2, 2)]
    assert [m["content"] for m in await chats.history(alice, conversation.id, max_chars=1000,
                                                      upto=answer.id)] == ["Délai d'un passeport ?",
                                                                           "Trois semaines."]
    with pytest.raises(NotFound):  # another's conversation, or a message of another conversation
        await chats.switch(bob, conversation.id, answer.id)
    other = await chats.start(alice, title="Autre", model="m")
    with pytest.raises(NotFound):
        await chats.switch(alice, other.id, answer.id)
    with pytest.raises(NotFound):
        await chats.add(alice, other.id, role="user", content="ailleurs", parent_id=answer.id)


async def test_search_finds_my_conversations_by_title_or_message(
        services: tuple[ConversationService, Principal, Principal, Principal]) -> None:
    chats, alice, bob, _ = services
    word = f"Zorglub{secrets.token_hex(3)}"  # the PostgreSQL database holds other tests' conversations
    titled = await chats.start(alice, title=f"Note {word}", model="m")
    written = await chats.start(alice, title="Sans rapport", model="m")
    await chats.add(alice, written.id, role="assistant", content=f"Il est question de {word.lower()} ici.")
    await chats.start(alice, title="Rien", model="m")
    theirs = await chats.start(bob, title=f"Note {word}", model="m")
    await chats.add(bob, theirs.id, role="user", content=word)
    assert {c.id for c in await chats.search(alice, f"  {word.upper()} ")} == {titled.id, written.id}
    assert [c.id for c in await chats.search(bob, word)] == [theirs.id]
    assert await chats.search(alice, "100%_") == []  # the wildcards are letters
