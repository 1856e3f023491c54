"""The lexical analyser: the same terms for a passage and for a question about it."""
from __future__ import annotations

from socle.rag.lexical import analyse, query_terms
from socle.text import fold


def test_accents_case_and_ligatures_are_folded() -> None:
    assert fold("Œuvre DÉCLARÉE à l'État") == "oeuvre declaree a l'etat"
    assert analyse("Télétravail") == analyse("teletravail") == "teletravail"


def test_elisions_stop_words_and_single_letters_are_dropped() -> None:
    assert query_terms("Qu'est-ce que l'allocation ?") == ["allocation"]
    assert query_terms("L’État et d’autres") == ["etat", "autres"]
    assert analyse("le titre de séjour à 16 ans") == "titre sejour 16 ans"


def test_query_terms_are_distinct_and_ordered() -> None:
    assert query_terms("passeport Passeport délai") == ["passeport", "delai"]
    assert query_terms("le la les de") == []
