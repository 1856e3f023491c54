"""The lexical analyser: the same terms for a passage and for a question about it."""
from __future__ import annotations

from socle.rag.lexical import analyse, fold, query_terms


def test_accents_case_and_ligatures_are_folded() -> None:
    assert fold("Œuvre DÉCLARÉE à l'État") == "oeuvre declaree a l'etat"


def test_elisions_and_stop_words_are_dropped() -> None:
    assert query_terms("Qu'est-ce que l'allocation ?") == query_terms("allocation est-ce")
    assert "l" not in analyse("l'allocation de la CAF").split()


def test_inflected_forms_meet_on_one_stem() -> None:
    question = set(query_terms("Comment déclarer ses revenus ?"))
    passage = set(analyse("La déclaration des revenus se fait en ligne ; on déclare avant mai.").split())
    assert question & passage >= {analyse("revenus")}
    assert analyse("déclarer") == analyse("déclare")


def test_query_terms_are_distinct_and_ordered() -> None:
    assert query_terms("passeport passeport délai") == [analyse("passeport"), analyse("délai")]
    assert query_terms("le la les de") == []
