"""Spreadsheets in and out, the same way for every importer and every CSV export of the platform: text that
is UTF-8 or what French Excel writes, a CSV's delimiter found on its header line, an Excel workbook's first
sheet; and a cell that a spreadsheet shows as text, never runs."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from openpyxl import load_workbook

from socle.errors import InvalidRequest

_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # what makes Excel or LibreOffice read a cell as a formula


def safe_cell(text: str) -> str:
    """``text``, with a leading apostrophe if it would start a formula (CSV injection)."""
    return "'" + text if text[:1] in _FORMULA else text


def unescaped(value: str | None) -> str | None:
    """A cell as written, without the apostrophe :func:`safe_cell` put before what would start a formula."""
    return value[1:] if value and value[:1] == "'" and value[1:2] in _FORMULA[:4] else value


def text_of(data: bytes) -> str:
    """An uploaded text file: UTF-8 (with or without its mark), else Windows-1252."""
    for encoding in ("utf-8-sig", "cp1252"):  # Excel's "CSV" in France is often Windows-1252
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidRequest("The file is neither UTF-8 nor Windows-1252 text.", param="file", code="bad_encoding")


def csv_rows(data: bytes) -> Iterator[dict[str, Any]]:
    """A CSV file's rows by column name; its delimiter (``;``, ``,``, tab or ``|``) read on the header line."""
    text = text_of(data)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text.split("\n", 1)[0], delimiters=";,\t|")
    except csv.Error:
        dialect = csv.excel
    yield from csv.DictReader(io.StringIO(text, newline=""), dialect=dialect)


def xlsx_rows(data: bytes) -> Iterator[dict[str, Any]]:
    """An Excel workbook's first sheet, by the names of its first row (an unnamed column: « colonne N »); blank
    rows skipped."""
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a file that is not a workbook
        raise InvalidRequest(f"Not a readable Excel workbook: {type(exc).__name__}", param="file",
                             code="invalid_xlsx") from None
    try:
        rows = book.worksheets[0].iter_rows(values_only=True)
        header = [str(c) if c is not None else f"colonne {i + 1}" for i, c in enumerate(next(rows, ()))]
        for values in rows:
            if any(v is not None and str(v).strip() for v in values):
                yield dict(zip(header, values, strict=False))
    finally:
        book.close()
