"""An analysis' annotations as a CSV file that French Excel opens as it is: UTF-8 with a byte-order mark,
``;`` between cells, quoted where needed, one row per message. Only the pseudonymised text is written, and no
cell can start a formula (CSV injection): one that starts with ``= + - @`` (or a tab, a carriage return) is
prefixed with an apostrophe."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from socle.apps.feedback.service import AnnotatedMessage
from socle.apps.feedback.taxonomy import SENTIMENT_FR, Taxonomy
from socle.spreadsheets import safe_cell

BOM = "\ufeff"
SEPARATOR = ";"
JOIN = " | "
COLUMNS = ("id", "date", "service", "canal", "texte", "themes", "confiances_themes", "sous_themes",
           "sentiment", "irritant", "urgent", "raison_urgence", "donnees_personnelles", "statut", "erreur",
           "brouillon_reponse")


def annotations_csv(rows: Iterable[AnnotatedMessage], taxonomy: Taxonomy) -> str:
    """One line per annotated message, in the order given (import order), a header line first."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, delimiter=SEPARATOR, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in _cells(row, taxonomy)])
    return out.getvalue()


def _cells(row: AnnotatedMessage, taxonomy: Taxonomy) -> list[str]:
    message, annotation = row.message, row.annotation
    result: dict[str, Any] = annotation.result if isinstance(annotation.result, dict) else {}
    themes = _scored(result.get("themes"))
    subthemes = _scored(result.get("subthemes"))
    sentiment = result.get("sentiment")
    urgent = result.get("urgent")
    return [
        message.external_id, message.written_on or "", message.service or "", message.channel or "",
        annotation.text,  # pseudonymised: never the message as imported
        JOIN.join(label for label, _ in themes),
        JOIN.join(_decimal(confidence) for _, confidence in themes),
        JOIN.join(taxonomy.subtheme_label(label) for label, _ in subthemes),
        SENTIMENT_FR.get(str(sentiment), str(sentiment)) if sentiment else "",
        str(result.get("irritant") or ""),
        "" if urgent is None else ("oui" if urgent is True else "non"),
        str(result.get("urgency_reason") or ""),
        ",".join(personal_data_kinds(annotation.personal_data)),
        "ok" if annotation.status == "ok" else "invalid",
        annotation.error or "",
        str(result.get("draft_reply") or ""),
    ]


def _scored(items: object) -> list[tuple[str, float]]:
    """Labels with their confidence, highest first."""
    if not isinstance(items, list):
        return []
    found = [(str(i["label"]), float(i.get("confidence") or 0)) for i in items
             if isinstance(i, dict) and i.get("label")]
    return sorted(found, key=lambda pair: -pair[1])


def personal_data_kinds(found: object) -> list[str]:
    """The kinds of personal data found in a message (``name``, ``email``…), each once, in order of appearance."""
    kinds: dict[str, None] = {}
    for item in found if isinstance(found, list) else []:
        if isinstance(item, dict) and item.get("kind"):
            kinds.setdefault(str(item["kind"]), None)
    return list(kinds)


def _decimal(value: float) -> str:
    return f"{value:.2f}".replace(".", ",")  # the French decimal comma: Excel reads a single one as a number
