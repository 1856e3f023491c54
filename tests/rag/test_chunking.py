"""Chunks respect sections, sizes and overlap, and keep their heading and page."""
from __future__ import annotations

import pytest

from socle.rag.chunking import chunk_document
from socle.rag.parsing import ParsedDocument, Section

SENTENCE = "Le délai de traitement d'une demande de titre de séjour est de soixante jours. "


def test_short_sections_are_one_chunk_each_with_title_and_page() -> None:
    document = ParsedDocument(sections=[Section("Premier texte.", title="Intro", page=1),
                                        Section("Second texte.", title="Suite", page=2)])
    chunks = chunk_document(document, size=500, overlap=50)
    assert [(c.index, c.text, c.title, c.page) for c in chunks] == [
        (0, "Premier texte.", "Intro", 1), (1, "Second texte.", "Suite", 2)]
    assert chunks[0].searchable == "Intro\nPremier texte."


def test_long_sections_are_cut_at_sentences_within_size_with_overlap() -> None:
    text = SENTENCE * 40 + "\n\n" + "Les pièces justificatives sont listées en annexe. " * 20
    chunks = chunk_document(ParsedDocument(sections=[Section(text, title="Séjour")]), size=400, overlap=80)
    assert len(chunks) > 5
    assert all(len(c.text) <= 400 for c in chunks)
    assert all(c.title == "Séjour" for c in chunks)
    assert all(c.text.endswith((".", "jours", "annexe")) or len(c.text) > 300 for c in chunks)
    # Consecutive chunks share text (the overlap), and together they cover everything.
    assert any(chunks[i].text[-30:] in chunks[i + 1].text for i in range(len(chunks) - 1))
    assert "pièces justificatives" in chunks[-1].text


def test_chunks_never_straddle_two_sections() -> None:
    document = ParsedDocument(sections=[Section(SENTENCE * 10, title="A"), Section(SENTENCE * 10, title="B")])
    chunks = chunk_document(document, size=300, overlap=0)
    titles = [c.title for c in chunks]
    assert titles == sorted(titles) and set(titles) == {"A", "B"}


@pytest.mark.parametrize("size, overlap", [(50, 0), (400, 300), (400, -1)])
def test_unreasonable_sizes_are_refused(size: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        chunk_document(ParsedDocument(sections=[Section("x")]), size=size, overlap=overlap)
