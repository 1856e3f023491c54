"""Personal data in feedback messages: every planted identifier is replaced, the rest of the text is not."""
from __future__ import annotations

import re
from typing import Any

import pytest

from socle.apps.feedback.pii import Span, detect, pseudonymise
from tests.apps.feedback.support import messages

# (message, planted values by kind, the expected pseudonymised message)
CASES: list[tuple[str, dict[str, list[str]], str]] = [
    ("Bonjour, je m'appelle Jean-Pierre Martin. Vous pouvez me joindre au 06 12 34 56 78 ou par mail : "
     "jp.martin@gmail.com.",
     {"name": ["Jean-Pierre Martin"], "phone": ["06 12 34 56 78"], "email": ["jp.martin@gmail.com"]},
     "Bonjour, je m'appelle [NOM_1]. Vous pouvez me joindre au [TELEPHONE_1] ou par mail : [EMAIL_1]."),
    ("Mme Dubois, à l'accueil de la CAF de Lyon, a été très aimable.",
     {"name": ["Dubois"]},
     "Mme [NOM_1], à l'accueil de la CAF de Lyon, a été très aimable."),
    ("Mon numéro de sécurité sociale est 1 85 05 75 123 456 73 et mon IBAN "
     "FR76 3000 6000 0112 3456 7890 189.",
     {"nir": ["1 85 05 75 123 456 73"], "iban": ["FR76 3000 6000 0112 3456 7890 189"]},
     "Mon numéro de sécurité sociale est [NIR_1] et mon IBAN [IBAN_1]."),
    ("Mon fils, né en Corse : 185052A12345633. Virement sur DE89370400440532013000 svp.",
     {"nir": ["185052A12345633"], "iban": ["DE89370400440532013000"]},
     "Mon fils, né en Corse : [NIR_1]. Virement sur [IBAN_1] svp."),
    ("Numéro de sécu : 2930213055042 (je n'ai pas la clé).",
     {"nir": ["2930213055042"]},
     "Numéro de sécu : [NIR_1] (je n'ai pas la clé)."),
    ("J'habite au 12 bis rue de la République, 69002 Lyon depuis 2019 et rien n'arrive.",
     {"address": ["12 bis rue de la République, 69002 Lyon"]},
     "J'habite au [ADRESSE_1] depuis 2019 et rien n'arrive."),
    ("Nouvelle adresse : 3, avenue du Général de Gaulle 75016 Paris. Ancienne : 7 impasse des Lilas.",
     {"address": ["3, avenue du Général de Gaulle 75016 Paris", "7 impasse des Lilas"]},
     "Nouvelle adresse : [ADRESSE_1]. Ancienne : [ADRESSE_2]."),
    ("Le courrier est parti au 45 bd Voltaire puis au 10 allée Jean Jaurès, 31000 Toulouse.",
     {"address": ["45 bd Voltaire", "10 allée Jean Jaurès, 31000 Toulouse"]},
     "Le courrier est parti au [ADRESSE_1] puis au [ADRESSE_2]."),
    ("Nous vivons chemin des Vignes, 13100 Aix-en-Provence, loin de tout.",
     {"address": ["chemin des Vignes, 13100 Aix-en-Provence"]},
     "Nous vivons [ADRESSE_1], loin de tout."),
    ("Mon numéro allocataire est le 1234567, n° de dossier : 2024-AB-12345.",
     {"identifier": ["1234567", "2024-AB-12345"]},
     "Mon numéro allocataire est le [IDENTIFIANT_1], n° de dossier : [IDENTIFIANT_2]."),
    ("Numéro fiscal 3012345678901 ; identifiant France Travail : 1234567X ; n° allocataire : 7654321 B.",
     {"identifier": ["3012345678901", "1234567X", "7654321 B"]},
     "Numéro fiscal [IDENTIFIANT_1] ; identifiant France Travail : [IDENTIFIANT_2] ; "
     "n° allocataire : [IDENTIFIANT_3]."),
    ("Monsieur le Préfet,\nM. Le Goff et Me Da Silva m'ont reçu avec le Dr Garcia.",
     {"name": ["Le Goff", "Da Silva", "Garcia"]},
     "Monsieur le Préfet,\nM. [NOM_1] et Me [NOM_2] m'ont reçu avec le Dr [NOM_3]."),
    ("Ma fille Inès Benali et mon mari Karim attendent depuis six mois.",
     {"name": ["Inès Benali", "Karim"]},
     "Ma fille [NOM_1] et mon mari [NOM_2] attendent depuis six mois."),
    ("Merci à la conseillère Sophie Lambert de France Travail, et à l'agent Morel.",
     {"name": ["Sophie Lambert", "Morel"]},
     "Merci à la conseillère [NOM_1] de France Travail, et à l'agent [NOM_2]."),
    ("Hier, Élodie Rousseau de la mairie m'a aidée. Je suis Hélène Garnier, retraitée.",
     {"name": ["Élodie Rousseau", "Hélène Garnier"]},
     "Hier, [NOM_1] de la mairie m'a aidée. Je suis [NOM_2], retraitée."),
    ("Madame, Monsieur,\nMon dossier est bloqué depuis mars.\nCordialement,\nMarie-Claire Fontaine",
     {"name": ["Marie-Claire Fontaine"]},
     "Madame, Monsieur,\nMon dossier est bloqué depuis mars.\nCordialement,\n[NOM_1]"),
    ("Toujours rien reçu.\n\nBien à vous,\nDUBOIS Marie\n0612345678",
     {"name": ["DUBOIS Marie"], "phone": ["0612345678"]},
     "Toujours rien reçu.\n\nBien à vous,\n[NOM_1]\n[TELEPHONE_1]"),
    ("Merci à Kevin du service client, et grâce à Pauline mon dossier avance. Bonjour Yanis, à bientôt.",
     {"name": ["Kevin", "Pauline", "Yanis"]},
     "Merci à [NOM_1] du service client, et grâce à [NOM_2] mon dossier avance. Bonjour [NOM_3], à bientôt."),
    ("je m'appelle kevin durand et j'attends mon RSA depuis mai.",
     {"name": ["kevin durand"]},
     "je m'appelle [NOM_1] et j'attends mon RSA depuis mai."),
    ("Je réside au 14 Rue Paul Bert, appartement 12, 94200 Ivry-sur-Seine. Mail : "
     "karim.benali75 @ hotmail.fr",
     {"address": ["14 Rue Paul Bert, appartement 12, 94200 Ivry-sur-Seine"],
      "email": ["karim.benali75 @ hotmail.fr"]},
     "Je réside au [ADRESSE_1]. Mail : [EMAIL_1]"),
    ("Allocataire n° 2345678, dossier 2025-0012345 toujours en attente.",
     {"identifier": ["2345678", "2025-0012345"]},
     "Allocataire n° [IDENTIFIANT_1], dossier [IDENTIFIANT_2] toujours en attente."),
    ("Madame, Monsieur,\nJe vous supplie de traiter mon dossier.\nAïssatou Camara\n"
     "12 rue des Lilas, 69003 Lyon",
     {"name": ["Aïssatou Camara"], "address": ["12 rue des Lilas, 69003 Lyon"]},
     "Madame, Monsieur,\nJe vous supplie de traiter mon dossier.\n[NOM_1]\n[ADRESSE_1]"),
    ("Écrivez à MARTIN.Paul@Orange.fr ou à paul_martin+caf@laposte.net.",
     {"email": ["MARTIN.Paul@Orange.fr", "paul_martin+caf@laposte.net"]},
     "Écrivez à [EMAIL_1] ou à [EMAIL_2]."),
]

PHONES = ["06 12 34 56 78", "06.12.34.56.78", "06-12-34-56-78", "0612345678", "+33 6 12 34 56 78",
          "+33 (0)1 45 67 89 12", "0033 1 45 67 89 12", "+33612345678", "09 72 10 10 10", "07 81 23 45 67",
          "06 39 98 41 27", "+33639985577", "+32 2 555 12 12", "+1 202 555 0143"]  # the fiction range; abroad
NIRS = ["1 85 05 75 123 456 73", "185057512345673", "2 68 03 92 012 345 23", "1 85 05 2A 123 456 33",
        "2 99 01 97 112 345 90"]
IBANS = ["FR76 3000 6000 0112 3456 7890 189", "FR7630006000011234567890189", "DE89 3704 0044 0532 0130 00",
         "BE71 0961 2345 6769", "GB82 WEST 1234 5698 7654 32", "CH93 0076 2011 6238 5295 7",
         "fr76 3000 6000 0112 3456 7890 189"]

NO_PERSONAL_DATA = [
    "Madame, Monsieur,\nJe vous écris au sujet de mon dossier déposé en 2024.",
    "Madame Monsieur, bonjour. La CAF de Paris ne répond jamais, France Travail non plus.",
    "J'ai rendez-vous le 12/03/2025 à 14h30 à la préfecture de Lyon.",
    "On m'a prélevé 1 234,56 € au lieu de 234,00 € le 03.02.2025.",
    "Monsieur le Maire, Madame la Directrice, Monsieur Le Préfet : merci.",
    "La facture n° 2024 de 1 250,00 euros est erronée, l'avoir de 99,90 € aussi.",
    "Je vis dans le 93 depuis 10 ans et j'ai 3 enfants.",
    "Ma fille de 12 ans et mon fils de 8 ans attendent leur carte d'identité.",
    "Bonjour Madame,\nMerci à la CAF de Marseille et au service des impôts de Toulouse.\nCordialement",
    "Service très lent.\nCordialement,\nUn usager mécontent",
    "Dossier traité en 48h, délai de 3 semaines, 350 euros par mois, ouvert de 9h à 17h.",
    "J'ai appelé le 3949 et le 3646 sans réponse, puis le 01/02.",
    "Le conseiller France Travail m'a orienté vers le lycée Victor Hugo à Saint-Jean-de-Luz.",
    "Le site ameli.fr ne marche pas, ni impots.gouv.fr, depuis Mars 2024.",
    "J'ai eu 3 cours de français et 2 places en crèche pour la rentrée 2025.",
    "Mon numéro de dossier ? Je ne l'ai jamais reçu. Mon identifiant ne marche pas depuis 2023.",
    "Merci, Bonne journée",
    "Excellent accueil à la Maison France Services de Saint-Denis, rue de la Gare.",
    "Un dossier de 15 000 euros refusé, puis un dossier 150 000 € accepté.",
    "En Lorraine comme à Florence, la Marine recrute ; la réponse était Claire et nette.",
    "Merci à l'équipe du centre social Jean Jaurès et à l'antenne du boulevard Victor-Hugo.",
    "Horaires de la plateforme : 32 30, 36 46, 39 60 ou 34 00 ; ticket n°47, case 7DB.",
    "Toujours rien.\nPays de la Loire",
]


def _name_parts(value: str) -> list[str]:
    return [w for w in re.findall(r"\w+", value) if len(w) >= 3]


@pytest.mark.parametrize(("text", "planted", "expected"), CASES)
def test_planted_identifiers_are_replaced_and_the_rest_is_unchanged(
        text: str, planted: dict[str, list[str]], expected: str) -> None:
    result = pseudonymise(text)
    for kind, values in planted.items():
        for value in values:
            assert value in text
            assert value not in result
            if kind == "name":
                assert not [part for part in _name_parts(value) if part in result]
    assert result == expected


@pytest.mark.parametrize("text", [case[0] for case in CASES])
def test_spans_are_sorted_disjoint_and_point_at_their_text(text: str) -> None:
    spans = detect(text)
    assert all(text[s.start:s.end] == s.text for s in spans)
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:], strict=False))
    assert {s.kind for s in spans} <= {"name", "email", "phone", "nir", "iban", "address", "identifier"}


@pytest.mark.parametrize("phone", PHONES)
def test_phone_numbers_in_every_usual_format(phone: str) -> None:
    assert pseudonymise(f"Rappelez-moi au {phone} svp.") == "Rappelez-moi au [TELEPHONE_1] svp."
    assert pseudonymise(f"Tél : {phone}") == "Tél : [TELEPHONE_1]"


@pytest.mark.parametrize("nir", NIRS)
def test_social_security_numbers_with_a_valid_key_need_no_cue(nir: str) -> None:
    assert [(s.kind, s.text) for s in detect(f"Voici le {nir} demandé.")] == [("nir", nir)]


def test_a_number_shaped_like_a_nir_needs_its_key_or_a_cue() -> None:
    assert detect("Référence interne 1850575123456 du courrier.") == []
    assert detect("Votre courrier 185057512345699 est arrivé.") == []  # wrong key
    assert [s.kind for s in detect("n° de sécurité sociale : 1 85 05 75 123 456")] == ["nir"]
    assert [s.kind for s in detect("Mon NIR 185057512345699 est refusé")] == ["nir"]


@pytest.mark.parametrize("value", IBANS)
def test_ibans_grouped_or_contiguous(value: str) -> None:
    assert pseudonymise(f"Mon RIB : {value} merci.") == "Mon RIB : [IBAN_1] merci."


def test_an_iban_with_a_wrong_checksum_is_not_one() -> None:
    assert [s.kind for s in detect("Compte FR76 3000 6000 0112 3456 7890 188.")] == []


def test_a_repeated_value_keeps_its_placeholder() -> None:
    text = ("Marie Dubois a appelé le 06 12 34 56 78. Mme Dubois rappellera au 0612345678, ou M. Petit au "
            "+33 7 81 23 45 67. Dubois écrit à marie.d@free.fr puis à MARIE.D@FREE.FR.")
    assert pseudonymise(text) == (
        "[NOM_1] a appelé le [TELEPHONE_1]. Mme [NOM_1] rappellera au [TELEPHONE_1], ou M. [NOM_2] au "
        "[TELEPHONE_2]. [NOM_1] écrit à [EMAIL_1] puis à [EMAIL_1].")


def test_family_members_sharing_a_surname_stay_apart() -> None:
    text = "Je suis Paul Girard. Ma femme Claire Girard et Paul Girard ont écrit."
    assert pseudonymise(text) == "Je suis [NOM_1]. Ma femme [NOM_2] et [NOM_1] ont écrit."


def test_given_spans_are_used_as_they_are() -> None:
    text = "Code 4242, voir Dubois."
    spans = [Span("identifier", 5, 9, "4242"), Span("name", 16, 22, "Dubois")]
    assert pseudonymise(text, spans) == "Code [IDENTIFIANT_1], voir [NOM_1]."
    assert pseudonymise(text, []) == text


@pytest.mark.parametrize("text", NO_PERSONAL_DATA)
def test_messages_without_personal_data_are_left_alone(text: str) -> None:
    assert detect(text) == []
    assert pseudonymise(text) == text


def test_every_value_planted_in_the_feedback_dataset_is_found_and_nothing_else() -> None:
    rows = messages()
    assert len(rows) >= 200
    for row in rows:
        found = [(s.kind, s.text) for s in detect(row["text"])]
        assert found == [(p["type"], p["value"]) for p in _occurrences(row)], row["id"]


def _occurrences(row: dict[str, Any]) -> list[dict[str, str]]:
    """Every occurrence of the planted values, in order (the dataset lists each value once), a value
    inside a longer one ("Marie" in "Marie Dubois") counted with it."""
    found = sorted(((m.start(), m.end(), item) for item in row["pii"]
                    for m in re.finditer(rf"(?<!\w){re.escape(item['value'])}(?!\w)", row["text"])),
                   key=lambda f: (f[0], -f[1]))
    kept: list[tuple[int, int, dict[str, str]]] = []
    for start, end, item in found:
        if not kept or start >= kept[-1][1]:
            kept.append((start, end, item))
    return [item for _, _, item in kept]

