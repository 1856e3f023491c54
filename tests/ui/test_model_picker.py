"""The model picker, rendered on its own: each model with its card, and one that cannot answer now marked and
not selectable (the page's choice falls on one that can)."""
from __future__ import annotations

from selectolax.lexbor import LexborHTMLParser

from socle.inference.cards import ModelCard
from socle.ui.routes.chat import ModelChoice
from socle.ui.web import TEMPLATES

CARD = ModelCard(description="Un modèle <b>ouvert</b>.", provider="Mistral AI", license="Apache-2.0",
                 intended_use="Rédaction", languages=["fr", "en"], runs_on="Sur les serveurs du ministère")


def test_an_unavailable_model_is_marked_and_cannot_be_chosen() -> None:
    html = TEMPLATES.get_template("_choix_modele.html").render(
        choices=[ModelChoice("en-panne", CARD, available=False), ModelChoice("mistral", CARD, available=True),
                 ModelChoice("sans-fiche", None, available=True)], chosen="mistral")
    tree = LexborHTMLParser(html)
    options = tree.css("#model option")
    assert [(o.text(), o.attributes.get("value"), "disabled" in o.attributes, "selected" in o.attributes)
            for o in options] == [("en-panne (indisponible)", "en-panne", True, False),
                                  ("mistral", "mistral", False, True), ("sans-fiche", "sans-fiche", False, False)]
    cards = {card.attributes["data-model"]: card for card in tree.css(".socle-model-card")}
    assert ["hidden" in card.attributes for card in cards.values()] == [True, False, True]
    assert "Indisponible pour le moment" in cards["en-panne"].text()
    assert "Indisponible" not in cards["mistral"].text()
    shown = cards["mistral"].text(separator=" ")
    for part in ("Un modèle <b>ouvert</b>.", "Mistral AI", "Apache-2.0", "Rédaction", "fr, en",
                 "Sur les serveurs du ministère"):
        assert part in shown  # the card's text, escaped
    assert "n'a pas encore décrit ce modèle" in cards["sans-fiche"].text()
