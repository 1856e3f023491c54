"""Why a message is urgent, as the agent reads it: the person's own words, French decimals."""
from __future__ import annotations

from socle.apps.feedback.engines.embedding import URGENT_FLOOR, _urgency_reason
from socle.apps.feedback.taxonomy import load_taxonomy

TAXONOMY = load_taxonomy()


def test_alert_words_are_quoted_as_written() -> None:
    reason = _urgency_reason("Nous allons être expulsés et nous serons à la rue !", TAXONOMY, 0.1, URGENT_FLOOR)
    assert reason == "Mots d'alerte : « expulsés », « à la rue »."


def test_the_classifier_s_reason_has_french_decimals() -> None:
    reason = _urgency_reason("Ma pension n'est toujours pas versée.", TAXONOMY, 0.734, URGENT_FLOOR)
    assert reason == "Ressemble aux messages urgents (probabilité estimée : 0,73, seuil : 0,65)."
    assert _urgency_reason("Ma pension n'est toujours pas versée.", TAXONOMY, 0.6, URGENT_FLOOR) is None
