"""A demonstration model answers questions about documents by extracts unless asked to write; every answer that
loops is stopped where it began repeating itself; files dropped into a conversation are searched by its turns,
are its owner's alone and go with it."""
from __future__ import annotations

import io

import pytest

from socle.chat.repetition import LoopGuard
from socle.errors import NotFound
from socle.rag import extractive
from tests.chat.test_turns import World, _add_document, world  # noqa: F401  (the fixture)
from tests.support.fake_backend import Stall

PASSAGES = ["Les agents peuvent télétravailler jusqu'à trois jours par semaine. Une indemnité de 2,88 euros est "
            "versée par jour de télétravail. Le télétravail est ouvert après accord du chef de service.",
            "La prime de fin d'année est de 150 euros pour la catégorie A."]


async def test_a_demonstration_model_answers_by_extracts_unless_asked_to_write(world: World) -> None:  # noqa: F811
    collection = await world.collections.create(world.alice, name="Télétravail")
    await _add_document(world, collection.id, "guide.md", PASSAGES)
    calls = len(world.backend.received)
    turn = await world.turns.take(world.alice, "Combien de jours de télétravail par semaine ?", model="demo",
                                  collections=[collection.id])
    answer = await turn.complete()
    assert len(world.backend.received) == calls  # the model was not asked
    assert "**Les agents peuvent télétravailler jusqu'à trois jours par semaine\\.**" in answer.content
    assert "[1] guide\\.md" in answer.content and "modèle de démonstration" in answer.content
    assert answer.sources == turn.sources and turn.sources and turn.sources[0]["document"] == "guide.md"

    written = await world.turns.take(world.alice, "Et l'indemnité ?", conversation_id=turn.conversation.id,
                                     collections=[collection.id], generate=True)
    await written.complete()
    assert len(world.backend.received) == calls + 1  # asked for, labelled a demonstration by the page

    plain = await world.turns.take(world.alice, "Bonjour", model="demo")  # no documents: the model answers
    await plain.complete()
    assert len(world.backend.received) == calls + 2


def test_extracts_highlight_the_answering_sentences_and_say_when_nothing_answers() -> None:
    assert extractive.sentences_of("Un. Deux ! Trois\nsuite\n\nQuatre") == ["Un.", "Deux !", "Trois\nsuite", "Quatre"]
    assert extractive.answer("Quel est le délai ?", []).startswith(extractive.NOTHING)


def test_the_loop_guard_cuts_where_the_repetition_began() -> None:
    guard = LoopGuard()
    text = "Le télétravail est possible. " + "Il est de 150 euros pour la catégorie A. " * 5
    cut = None
    for word in text.split(" "):
        cut = cut or guard.feed(word + " ")
    assert cut is not None
    assert guard.text[:cut].rstrip() == "Le télétravail est possible. Il est de 150 euros pour la catégorie A."
    ruled = LoopGuard()
    assert all(ruled.feed(piece) is None for piece in ["| a | b |\n", "|---|---|\n", "| 1 | 2 |\n"])
    spaceless = LoopGuard()
    assert any(spaceless.feed("ab") is not None for _ in range(60))


async def test_an_answer_that_loops_is_stopped_and_cut(world: World) -> None:  # noqa: F811
    looping = "Le montant est de 150 euros pour la catégorie A. " * 6
    world.backend.script(Stall(after=len(looping.split()), text=looping))  # would then wait for ever
    turn = await world.turns.take(world.alice, "Combien de jours de télétravail ?", model="chat")
    answer = await turn.complete()
    assert turn.looped
    assert answer.content.startswith("Le montant est de 150 euros pour la catégorie A.")
    assert answer.content.count("150 euros") == 1 and "le modèle se répétait" in answer.content
    call = world.backend.received[-1]
    await world.backend.wait_until(lambda: call.outcome == "abandoned")  # the model was stopped


async def test_files_dropped_into_a_conversation_are_searched_by_its_turns_and_its_owners_alone(
        world: World) -> None:  # noqa: F811
    first = await world.turns.take(world.alice, "Bonjour", model="chat")
    await first.complete()
    conversation = first.conversation.id
    files = world.turns._files
    with pytest.raises(NotFound):  # not bob's conversation
        await files.upload(world.bob, conversation, "note.txt", io.BytesIO(b"Rien."))
    document, created = await files.upload(world.alice, conversation, "note.txt", io.BytesIO(b"Une note."))
    assert created and document.status == "queued"
    collection = await files.collection_id(world.alice, conversation)
    assert collection is not None and await files.collection_id(world.bob, conversation) is None
    assert [d.id for d in await files.list(world.alice, conversation)] == [document.id]
    assert await files.list(world.bob, conversation) == []
    assert collection not in [c.id for c in await world.collections.list(world.alice)]  # not in "Mes documents"
    with pytest.raises(NotFound):
        await world.collections.get(world.bob, collection)
    await _add_document(world, collection, "horaires.md", ["Le service ouvre à huit heures trente."])

    turn = await world.turns.take(world.alice, "À quelle heure ouvre le service ?", conversation_id=conversation)
    await turn.complete()
    assert turn.sources and turn.sources[0]["document"] == "horaires.md"
    assert "huit heures trente" in world.sent()[-1]["content"]

    await files.forget(world.alice, conversation)
    await world.conversations.delete(world.alice, conversation)
    assert await files.collection_id(world.alice, conversation) is None
    with pytest.raises(NotFound):
        await world.collections.get(world.alice, collection)
