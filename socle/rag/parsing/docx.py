"""DOCX, with python-docx (MIT): paragraphs grouped under their headings, tables as lines."""
from __future__ import annotations

from pathlib import Path

import docx
from docx.opc.exceptions import PackageNotFoundError

from socle.rag.parsing.base import Limits, ParsedDocument, ParseError, check_zip, clean
from socle.rag.parsing.sections import SectionBuilder


def parse(path: Path, limits: Limits) -> ParsedDocument:
    check_zip(path, limits)
    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, KeyError, ValueError) as exc:
        raise ParseError("The DOCX file is corrupt or not a Word document.") from exc
    builder = SectionBuilder()
    for paragraph in document.paragraphs:
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        if style.startswith("Heading") or style == "Title":
            builder.heading(paragraph.text)
        else:
            builder.line(paragraph.text)
    for table in document.tables:
        for row in table.rows:
            builder.line(" | ".join(cell.text for cell in row.cells))
    title = document.core_properties.title or None
    return ParsedDocument(sections=builder.sections(), title=clean(title) if title else None)


