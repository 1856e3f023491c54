"""Reading feedback files as they come: CSV with any delimiter and encoding, JSONL, Excel, and the
Services Publics+ export recognised by its header, its labels kept."""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime

import pytest
from openpyxl import Workbook

from socle.apps.feedback.importing import parse
from socle.errors import InvalidRequest

SPP_HEADER = ["ID expérience", "Écrit le", "Titre", "Description", "Ressenti usager", "Intitulé typologie 1",
              "Intitulé structure 1", "Réponse structure 1", "Accessibilité", "Information/Explication", "Relation",
              "Réactivité", "Simplicité/Complexité"]


def _spp_export() -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    writer.writerow(SPP_HEADER)
    writer.writerow(["1234", "14/03/2025", "Dossier bloqué", "Trois mois sans réponse; toujours rien.\nAidez-moi.",
                     "Négatif", "Prestations", "CAF de la Gironde", "", "", "", "", "Négatif", ""])
    writer.writerow(["1235", "2025-04-02", "Merci", "Accueil parfait à l'agence.", "Positif", "Emploi",
                     "France Travail Lyon", "Merci pour votre retour.", "", "", "Positif", "", ""])
    return out.getvalue().encode("utf-8-sig")


def test_services_publics_plus_export_needs_no_mapping_and_keeps_its_labels() -> None:
    parsed = parse("export-experiences.csv", _spp_export())
    assert parsed.source_format == "sp+"
    first, second = parsed.records
    assert first.external_id == "1234"
    assert first.text == "Dossier bloqué\nTrois mois sans réponse; toujours rien.\nAidez-moi."
    assert (first.written_on, first.service, first.channel) == ("2025-03-14", "CAF de la Gironde", "Services Publics+")
    assert first.labels == {"sentiment": "negative", "themes": ["Réactivité"]}
    assert second.labels == {"sentiment": "positive", "themes": ["Relation"]}
    assert second.extra["Réponse structure 1"] == "Merci pour votre retour."


def test_csv_in_windows_1252_with_commas_and_a_mapping() -> None:
    data = "Ref,Verbatim,Jour,Note\nR1,\"Très long délai, inadmissible\",03/01/2025,1\nR2,,04/01/2025,3\n" \
           "R1,doublon,05/01/2025,2\n".encode("cp1252")
    parsed = parse("avis.csv", data, {"text": "Verbatim", "id": "Ref"})
    assert [(r.external_id, r.text, r.written_on, r.rating) for r in parsed.records] == [
        ("R1", "Très long délai, inadmissible", "2025-01-03", 1.0)]
    assert parsed.skipped == ["ligne 3 : texte vide", "ligne 4 : identifiant 'R1' déjà vu"]


def test_jsonl_with_labels() -> None:
    lines = [{"id": "a", "text": "Site en panne", "date": "2025-02-01", "service": "ANTS", "themes": ["Simplicité/Complexité"],
              "subthemes": ["site_demarche_en_ligne"], "sentiment": "negative", "urgent": False},
             {"text": "Bonjour, quels sont les horaires ?"}]
    parsed = parse("x.jsonl", "\n".join(json.dumps(line, ensure_ascii=False) for line in lines).encode())
    first, second = parsed.records
    assert first.labels == {"themes": ["Simplicité/Complexité"], "subthemes": ["site_demarche_en_ligne"],
                            "sentiment": "negative", "urgent": False}
    assert (second.external_id, second.labels) == ("ligne-2", None)


def test_excel_workbook() -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["Identifiant", "Commentaire", "Date de dépôt", "Administration", "Canal"])
    sheet.append(["X1", "Personne ne décroche au 3949.", datetime(2025, 6, 30, 10, 0), "France Travail", "Courriel"])
    sheet.append([None, None, None, None, None])
    sheet.append(["X2", "Parfait, merci.", datetime(2025, 7, 1), "Mairie", None])
    out = io.BytesIO()
    book.save(out)
    parsed = parse("avis.xlsx", out.getvalue())
    assert parsed.source_format == "xlsx"
    assert [(r.external_id, r.text, r.written_on, r.service, r.channel) for r in parsed.records] == [
        ("X1", "Personne ne décroche au 3949.", "2025-06-30", "France Travail", "Courriel"),
        ("X2", "Parfait, merci.", "2025-07-01", "Mairie", None)]


@pytest.mark.parametrize(("filename", "data", "mapping", "code"), [
    ("avis.pdf", b"%PDF", None, "unsupported_file_type"),
    ("avis.csv", b"a;b\n1;2\n", None, "missing_text_column"),
    ("avis.csv", b"texte;b\n1;2\n", {"date": "Quand"}, "unknown_column"),
    ("avis.jsonl", b'{"text": "ok"}\n{pas du json\n', None, "invalid_jsonl"),
    ("avis.xlsx", b"not a workbook", None, "invalid_xlsx"),
])
def test_bad_files_are_refused_with_a_reason(filename: str, data: bytes, mapping: dict[str, str] | None,
                                             code: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse(filename, data, mapping)
    assert refused.value.code == code


def test_a_file_too_large_in_messages_is_refused() -> None:
    data = ("texte\n" + "".join(f"message {i}\n" for i in range(11))).encode()
    with pytest.raises(InvalidRequest) as refused:
        parse("avis.csv", data, max_messages=10)
    assert refused.value.code == "too_many_messages"
