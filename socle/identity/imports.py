"""Reading a CSV file of accounts to import: one line per person, with their name, e-mail address, role and groups.

The file is what a spreadsheet saves: UTF-8 (with or without its byte-order mark) or, failing that, Windows-1252
(the French Excel's "CSV (séparateur : point-virgule)"); columns separated by commas, semicolons or tabs, found
from the header line. The header names the columns, in French or English, in any order: ``nom``/``name``,
``email``/``e-mail``/``courriel``/``adresse électronique``, ``rôle``/``role``, ``groupes``/``groups``. Only
the e-mail column is required. Several groups in one cell are separated by ``|`` (or by whichever of ``,`` and
``;`` does not separate the columns).

This module only reads: what each line asks for, and what is wrong with its form. Whether the role, the groups
and the address exist is for the service to say (``identity.invitations``).
"""
from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field

from socle.errors import InvalidRequest

MAX_ROWS = 1000
MAX_BYTES = 512 * 1024  # the preview carries the file back in its form: under a form field's 1 MiB
_COLUMNS = {"nom": "name", "name": "name", "nom complet": "name", "email": "email", "e-mail": "email",
            "mail": "email", "courriel": "email", "adresse electronique": "email", "adresse": "email",
            "role": "role", "groupes": "groups", "groupe": "groups", "groups": "groups", "group": "groups"}
_DELIMITERS = ",;\t"


@dataclass(slots=True)
class ImportRow:
    """One line of the file; ``problems``: (code, the value at fault), empty when the line can be imported."""

    line: int
    email: str
    name: str
    role: str
    groups: tuple[str, ...]
    problems: list[tuple[str, str]] = field(default_factory=list)


def parse(data: bytes) -> list[ImportRow]:
    """Every line of the file with a value in it; :class:`InvalidRequest` when the file cannot be read as a list
    of accounts at all (no header with an e-mail column, too big, too many lines)."""
    if len(data) > MAX_BYTES:
        raise InvalidRequest(f"The file is larger than {MAX_BYTES // 1024} KiB.", param="file",
                             code="import_too_large")
    text = decoded(data)
    first = text.split("\n", 1)[0]
    delimiter = max(_DELIMITERS, key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    columns = [_COLUMNS.get(_plain(cell)) for cell in header or []]
    if "email" not in columns:
        raise InvalidRequest("The first line must name the columns, among them the e-mail address "
                             "(nom, courriel, rôle, groupes).", param="file", code="import_no_header")
    separators = "|" + "".join(sep for sep in ",;" if sep != delimiter)
    rows = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        if len(rows) == MAX_ROWS:
            raise InvalidRequest(f"At most {MAX_ROWS} accounts per file.", param="file", code="import_too_many")
        values = {column: cell.strip() for column, cell in zip(columns, cells, strict=False) if column}
        groups = tuple(g.strip() for g in re.split(f"[{re.escape(separators)}]", values.get("groups", "")) if g.strip())
        rows.append(ImportRow(line=reader.line_num, email=values.get("email", ""), name=values.get("name", ""),
                              role=values.get("role", "").lower() or "user", groups=groups))
    return rows


def decoded(data: bytes) -> str:
    """The file's text (its encoding guessed as above); what a preview carries back to be imported."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    if "\x00" in text:
        raise InvalidRequest("This file is not a CSV text file.", param="file", code="import_not_csv")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _plain(cell: str) -> str:
    """A header cell without case, accents or surrounding spaces: ``Rôle`` is ``role``."""
    decomposed = unicodedata.normalize("NFKD", cell.strip().lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))
