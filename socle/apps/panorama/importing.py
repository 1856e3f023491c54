"""Reading and writing the catalogue: YAML (the sample's format), CSV (any delimiter, UTF-8 or Windows-1252)
and Excel, with French or English column names; and the CSV and YAML a catalogue is exported to, which
read back as they were written.

A family, a maturity or a hosting may be given by its code or its French label, in any case and with or
without accents: what a spreadsheet typed by hand holds.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from socle.apps.panorama.vocabulary import FAMILIES, HOSTINGS, MATURITIES
from socle.errors import InvalidRequest
from socle.spreadsheets import csv_rows, safe_cell, unescaped, xlsx_rows
from socle.text import compact, fold

SAMPLE = Path(__file__).parent / "data" / "solutions.yaml"
MAX_SOLUTIONS = 5000  # in one file
MAX_BYTES = 8 * 1024 * 1024


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", fold(text)).strip("-")[:120] or "solution"


def _code(value: str, choices: Mapping[str, str], what: str) -> str:
    wanted = compact(value)
    for code, label in choices.items():
        if wanted in (compact(code), compact(label)):
            return code
    raise ValueError(f"unknown {what} {value!r} (one of: {', '.join(choices)})")


class SolutionFields(BaseModel):
    """What describes a solution, as given by a form, an import or the API."""

    model_config = {"extra": "forbid", "str_strip_whitespace": True}

    name: str = Field(min_length=1, max_length=200)
    slug: str = Field(default="", max_length=120, pattern=r"^[a-z0-9-]*$",
                      description="Stable identifier; derived from the name when empty.")
    family: str = Field(description="Family code (redaction, recherche, ...) or its French label.")
    editor: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=5000)
    maturity: str = Field(default="experimentation", description="experimentation, pilote or production")
    hosting: str = Field(default="ue", description="secnumcloud, ue, sur_site or hors_ue")
    open_source: bool = False
    licence: str = Field(default="", max_length=100)
    integration: str = Field(default="", max_length=1000)
    criterion_impact: str = Field(default="", max_length=2000)
    criterion_maturity: str = Field(default="", max_length=2000)
    criterion_integration: str = Field(default="", max_length=2000)
    criterion_compliance: str = Field(default="", max_length=2000)
    keywords: list[str] = Field(default_factory=list, max_length=30)
    url: str = Field(default="", max_length=500, pattern=r"^(https?://\S+)?$")

    @field_validator("family", mode="before")
    @classmethod
    def _family(cls, value: object) -> str:
        return _code(str(value or ""), {f.code: f.label for f in FAMILIES}, "family")

    @field_validator("maturity", mode="before")
    @classmethod
    def _maturity(cls, value: object) -> str:
        return _code(str(value or "experimentation"), MATURITIES, "maturity")

    @field_validator("hosting", mode="before")
    @classmethod
    def _hosting(cls, value: object) -> str:
        return _code(str(value or "ue"), HOSTINGS, "hosting")

    @field_validator("open_source", mode="before")
    @classmethod
    def _flag(cls, value: object) -> bool:
        if isinstance(value, str):
            return compact(value) in ("1", "true", "vrai", "oui", "yes", "x", "libre", "opensource")
        return bool(value)

    @field_validator("keywords", mode="before")
    @classmethod
    def _keywords(cls, value: object) -> list[str]:
        if isinstance(value, str):
            value = re.split(r"[;,|]", value)
        return [str(word).strip() for word in value or [] if str(word).strip()]  # type: ignore[union-attr]

    def resolved_slug(self) -> str:
        return self.slug or slugify(self.name)


FIELDS = tuple(SolutionFields.model_fields)
# Column names each field is also known by, compared folded (no case, accents or punctuation).
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "name": ("nom", "solution", "nomdelasolution"), "slug": ("identifiant", "id"),
    "family": ("famille", "famillefonctionnelle"), "editor": ("editeur", "fournisseur"),
    "description": ("presentation", "resume"), "maturity": ("maturite", "stade"),
    "hosting": ("hebergement",), "open_source": ("opensource", "logiciellibre", "libre"),
    "licence": ("license",), "integration": ("integrations", "modalitesdintegration"),
    "criterion_impact": ("impact", "impactattendu"), "criterion_maturity": ("maturitefonctionnelle",),
    "criterion_integration": ("capacitedintegration",), "criterion_compliance": ("conformite",),
    "keywords": ("motscles", "motcle", "tags"), "url": ("site", "siteweb", "lien"),
}


def parse(filename: str, data: bytes) -> list[SolutionFields]:
    """The solutions of a YAML, CSV or Excel file; every row's errors at once, in the message."""
    if len(data) > MAX_BYTES:
        raise InvalidRequest(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MiB.", param="file",
                             code="file_too_large")
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if suffix in ("yaml", "yml"):
        rows = _yaml(data)
    elif suffix in ("csv", "tsv", "txt"):
        rows = [{k: unescaped(v) for k, v in row.items()} for row in csv_rows(data)]
    elif suffix in ("xlsx", "xlsm"):
        rows = list(xlsx_rows(data))
    else:
        raise InvalidRequest(f"Unsupported catalogue file {filename!r}: give a .yaml, .csv or .xlsx file.",
                             param="file", code="unsupported_file_type")
    solutions, errors = [], []
    for number, row in enumerate(rows, start=1):
        if len(solutions) >= MAX_SOLUTIONS:
            raise InvalidRequest(f"More than {MAX_SOLUTIONS} solutions in one file.", param="file")
        try:
            solutions.append(SolutionFields.model_validate(_fields(row)))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            errors.append(f"solution {number}: {problems}")
    if errors:
        raise InvalidRequest("Invalid catalogue: " + " | ".join(errors[:20]), param="file", code="invalid_catalogue")
    slugs = [s.resolved_slug() for s in solutions]
    if len(set(slugs)) != len(slugs):
        twice = sorted({s for s in slugs if slugs.count(s) > 1})
        raise InvalidRequest(f"Solutions named twice in the file: {', '.join(twice)}.", param="file")
    return solutions


def sample() -> tuple[list[SolutionFields], bool]:
    """The catalogue shipped with the app, and whether it is illustrative (it is)."""
    data = SAMPLE.read_bytes()
    return parse(SAMPLE.name, data), bool(yaml.safe_load(data).get("illustrative"))


def _fields(row: Mapping[str, Any]) -> dict[str, Any]:
    by_key = {compact(str(name)): value for name, value in row.items() if name is not None}
    fields = {}
    for name in FIELDS:
        for key in (compact(name), *_SYNONYMS.get(name, ())):
            if key in by_key and by_key[key] not in (None, ""):
                fields[name] = by_key[key]
                break
    unknown = set(by_key) - {compact(n) for n in FIELDS} - {s for names in _SYNONYMS.values() for s in names}
    if unknown and not fields:
        raise InvalidRequest(f"No known column in the file (found: {', '.join(sorted(unknown))}).", param="file")
    return {k: (str(v) if k not in ("keywords", "open_source") and not isinstance(v, str) else v)
            for k, v in fields.items()}


def _yaml(data: bytes) -> list[Mapping[str, Any]]:
    try:
        document = yaml.safe_load(data.decode("utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"Unreadable YAML: {exc}", param="file", code="bad_yaml") from None
    rows = document.get("solutions") if isinstance(document, dict) else document
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InvalidRequest("A YAML catalogue is a list of solutions, or a mapping with a 'solutions' list.",
                             param="file", code="bad_yaml")
    return rows


def to_csv(solutions: Iterable[Mapping[str, Any]]) -> str:
    """The catalogue as CSV (``;``-separated, as French spreadsheets expect), cells safe to open."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(FIELDS)
    for solution in solutions:
        writer.writerow([safe_cell(_cell(solution.get(name))) for name in FIELDS])
    return out.getvalue()


def to_yaml(solutions: Sequence[Mapping[str, Any]]) -> str:
    rows = [{name: solution.get(name) for name in FIELDS} for solution in solutions]
    return yaml.safe_dump({"solutions": rows}, allow_unicode=True, sort_keys=False, width=120)


def _cell(value: object) -> str:
    if isinstance(value, list):
        return "; ".join(map(str, value))
    if isinstance(value, bool):
        return "oui" if value else "non"
    return "" if value is None else str(value)
