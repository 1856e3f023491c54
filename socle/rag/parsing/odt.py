"""ODT (OpenDocument text), with odfpy (Apache-2.0): headings and paragraphs in document order."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from odf import teletype, text
from odf.opendocument import load

from socle.rag.parsing.base import Limits, ParsedDocument, ParseError, check_zip
from socle.rag.parsing.sections import SectionBuilder

_HEADING = text.H(outlinelevel=1).qname
_PARAGRAPH = text.P().qname


def parse(path: Path, limits: Limits) -> ParsedDocument:
    check_zip(path, limits)
    try:
        document = load(str(path))
    except Exception as exc:  # odfpy lets anything through from zip, XML or its own code on a broken file
        raise ParseError("The ODT file is corrupt or not an OpenDocument text.") from exc
    builder = SectionBuilder()
    for element in _blocks(document.text):
        if element.qname == _HEADING:
            builder.heading(teletype.extractText(element))
        else:
            builder.line(teletype.extractText(element))
    return ParsedDocument(sections=builder.sections())


def _blocks(node: Any) -> Iterator[Any]:
    """Headings and paragraphs in document order, including those inside lists and tables."""
    for child in node.childNodes:
        if getattr(child, "qname", None) in (_HEADING, _PARAGRAPH):
            yield child
        elif getattr(child, "childNodes", None):
            yield from _blocks(child)
