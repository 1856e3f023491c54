"""Reading feedback files: CSV (any delimiter), JSONL and Excel, their columns mapped to what the app
knows (text, date, service, channel, rating, id). The Services Publics+ open-data export
(``export-experiences``, ``;``-separated) is recognised by its header and needs no mapping; the labels it
carries (the citizen's own feeling, the engagements tagged) are kept as ground truth, as are the label
columns of any file (themes, subthemes, sentiment, urgent)."""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import orjson

from socle.apps.feedback.taxonomy import SENTIMENTS
from socle.errors import InvalidRequest
from socle.spreadsheets import csv_rows, text_of, xlsx_rows
from socle.text import compact

MAX_TEXT = 20_000  # characters kept of one message
FIELDS = ("text", "id", "date", "service", "channel", "rating")
# Column names each field is recognised by, compared folded (no case, accents, punctuation).
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "text": ("text", "texte", "message", "description", "avis", "commentaire", "verbatim", "contenu", "body"),
    "id": ("id", "identifiant", "idexperience", "reference", "ref", "numero"),
    "date": ("date", "ecritle", "creele", "createdat", "datededepot", "datedepot", "jour"),
    "service": ("service", "administration", "structure", "intitulestructure1", "organisme", "direction"),
    "channel": ("channel", "canal", "source", "origine"),
    "rating": ("rating", "note", "satisfaction", "score"),
}
_SENTIMENT_WORDS = {"positif": "positive", "positive": "positive", "negatif": "negative", "negative": "negative",
                    "neutre": "neutral", "neutral": "neutral"}
_TRUE = {"1", "true", "vrai", "oui", "yes", "x"}
_SPP_HEADER = ("idexperience", "description", "ressentiusager")  # the export's signature
_SPP_ENGAGEMENTS = ("Accessibilité", "Information/Explication", "Relation", "Réactivité", "Simplicité/Complexité")


@dataclass(slots=True)
class Record:
    external_id: str
    text: str
    written_on: str | None = None
    service: str | None = None
    channel: str | None = None
    rating: float | None = None
    labels: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Parsed:
    source_format: str  # csv | sp+ | jsonl | xlsx
    records: list[Record]
    skipped: list[str]  # why some rows were left out ("ligne 12 : texte vide")


def _key(name: object) -> str:
    return compact(str(name or ""))


def parse(filename: str, data: bytes, mapping: Mapping[str, str] | None = None, *,
          max_messages: int = 100_000) -> Parsed:
    """The file's messages; ``mapping`` names the column of any field (``{"text": "Verbatim"}``)."""
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if suffix in ("jsonl", "ndjson"):
        rows: Iterable[dict[str, Any]] = _jsonl(data)
        source_format = "jsonl"
    elif suffix in ("xlsx", "xlsm"):
        rows, source_format = xlsx_rows(data), "xlsx"
    elif suffix in ("csv", "tsv", "txt"):
        rows, source_format = csv_rows(data), "csv"
    else:
        raise InvalidRequest(f"Unsupported feedback file {filename!r}: give a .csv, .jsonl or .xlsx file.",
                             param="file", code="unsupported_file_type")
    records, skipped, seen = [], [], set()
    columns: dict[str, str | None] | None = None
    for line, row in enumerate(rows, start=2 if source_format != "jsonl" else 1):
        if columns is None:
            columns, is_spp = _columns(list(row), mapping)
            if is_spp:
                source_format = "sp+"
        record = _spp_record(row, columns) if source_format == "sp+" else _record(row, columns)
        if not record.text:
            skipped.append(f"ligne {line} : texte vide")
            continue
        record.external_id = record.external_id or f"ligne-{line}"
        if record.external_id in seen:
            skipped.append(f"ligne {line} : identifiant {record.external_id!r} déjà vu")
            continue
        seen.add(record.external_id)
        records.append(record)
        if len(records) > max_messages:
            raise InvalidRequest(f"More than {max_messages} messages in one file: split it.", param="file",
                                 code="too_many_messages")
    if columns is not None and columns.get("text") is None:
        raise InvalidRequest("No column holds the messages' text: name it with a mapping (text=COLUMN).",
                             param="mapping", code="missing_text_column")
    return Parsed(source_format, records, skipped)


def _columns(header: list[str], mapping: Mapping[str, str] | None) -> tuple[dict[str, str | None], bool]:
    by_key = {_key(name): name for name in header}
    columns: dict[str, str | None] = {}
    for name in FIELDS:
        wanted = (mapping or {}).get(name)
        if wanted is not None:
            if wanted not in header and _key(wanted) not in by_key:
                raise InvalidRequest(f"Mapping {name}={wanted!r}: no such column (columns: {', '.join(header)}).",
                                     param="mapping", code="unknown_column")
            columns[name] = wanted if wanted in header else by_key[_key(wanted)]
        else:
            columns[name] = next((by_key[s] for s in _SYNONYMS[name] if s in by_key), None)
    return columns, all(k in by_key for k in _SPP_HEADER) and not mapping


def _jsonl(data: bytes) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(text_of(data).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"Line {number} is not valid JSON: {exc}", param="file",
                                 code="invalid_jsonl") from exc
        if not isinstance(row, dict):
            raise InvalidRequest(f"Line {number} is not a JSON object.", param="file", code="invalid_jsonl")
        yield row


def _cell(row: Mapping[str, Any], column: str | None) -> str | None:
    if column is None:
        return None
    value = row.get(column)
    if value is None:
        return None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    text = str(value).replace("\x00", "").strip()  # never part of a message, and PostgreSQL stores none
    return text or None


def _record(row: Mapping[str, Any], columns: Mapping[str, str | None]) -> Record:
    keyed = {_key(k): v for k, v in row.items()}
    extra = {k: v for k, v in row.items() if k not in columns.values() and _key(k) not in _LABEL_KEYS}
    if isinstance(row.get("pii"), list):
        extra["pii"] = row["pii"]
    return Record(external_id=_cell(row, columns["id"]) or "", text=(_cell(row, columns["text"]) or "")[:MAX_TEXT],
                  written_on=_date(_cell(row, columns["date"])), service=_cell(row, columns["service"]),
                  channel=_cell(row, columns["channel"]), rating=_number(_cell(row, columns["rating"])),
                  labels=_labels(keyed), extra={k: v for k, v in extra.items() if _jsonable(v)})


_LABEL_KEYS = ("themes", "subthemes", "sentiment", "urgent", "pii")


def _labels(keyed: Mapping[str, Any]) -> dict[str, Any] | None:
    labels: dict[str, Any] = {}
    for name in ("themes", "subthemes"):
        value = keyed.get(name)
        if isinstance(value, str):
            value = [v.strip() for v in re.split(r"[|;]", value) if v.strip()]
        if isinstance(value, list):
            labels[name] = [str(v) for v in value]
    sentiment = _SENTIMENT_WORDS.get(_key(keyed.get("sentiment")))
    if sentiment in SENTIMENTS:
        labels["sentiment"] = sentiment
    urgent = keyed.get("urgent")
    if isinstance(urgent, bool):
        labels["urgent"] = urgent
    elif urgent is not None and str(urgent).strip():
        labels["urgent"] = str(urgent).strip().lower() in _TRUE
    return labels or None


def _spp_record(row: Mapping[str, Any], columns: Mapping[str, str | None]) -> Record:
    keyed = {_key(k): (k, v) for k, v in row.items()}

    def get(name: str) -> str | None:
        column, _ = keyed.get(_key(name), (None, None))
        return _cell(row, column)
    title, description = get("Titre"), get("Description") or ""
    text = f"{title}\n{description}" if title and not description.startswith(title) else description
    labels: dict[str, Any] = {}
    feeling = _SENTIMENT_WORDS.get(_key(get("Ressenti usager")))
    if feeling:
        labels["sentiment"] = feeling
    tagged = [name for name in _SPP_ENGAGEMENTS if get(name)]
    if any(_key(name) in keyed for name in _SPP_ENGAGEMENTS):
        labels["themes"] = tagged
    extra = {k: v for k, v in row.items() if v not in (None, "") and _jsonable(v)
             and _key(k) not in ("idexperience", "description", "titre", "ecritle")}
    services = [s for s in (get(f"Intitulé structure {i}") for i in (1, 2, 3)) if s]
    return Record(external_id=get("ID expérience") or "", text=text.strip()[:MAX_TEXT],
                  written_on=_date(get("Écrit le")), service=services[0] if services else None,
                  channel="Services Publics+", labels=labels or None, extra=extra)


def _date(value: str | None) -> str | None:
    """An ISO date (YYYY-MM-DD) from the usual ways of writing one; None when unreadable."""
    if not value:
        return None
    value = value.strip()
    for pattern in ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d/%m/%y", "%Y/%m/%d"):
        try:
            return datetime.strptime(value[:10] if pattern.startswith("%Y") else value.split()[0], pattern) \
                .date().isoformat()
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(value).date().isoformat()
    except ValueError:
        return None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.replace(",", "."))
    except ValueError:
        return None


def _jsonable(value: object) -> bool:
    return isinstance(value, (str, int, float, bool, list, dict)) or value is None
