"""French folding: one meaning of a word for search, the apps' cues and column names."""
from __future__ import annotations

from socle.text import compact, fold, terms


def test_fold_lowers_strips_accents_and_opens_ligatures() -> None:
    assert fold("Œuvre DÉCLARÉE à l'État, cæcum") == "oeuvre declaree a l'etat, caecum"


def test_terms_cut_elisions_stop_words_and_single_letters_but_keep_numbers() -> None:
    assert terms("L’État m'a répondu qu'il fallait 16 jours à Paris") == ["etat", "repondu", "fallait", "16",
                                                                          "jours", "paris"]
    assert terms("démarche démarche") == ["demarche", "demarche"]


def test_compact_matches_names_whatever_their_spelling() -> None:
    assert compact("Date de dépôt") == compact("date_de_depot") == compact("DATE-DE-DÉPÔT") == "datededepot"
    assert compact("Intitulé structure 1") == "intitulestructure1"
