"""PDF, with pypdf (BSD): text per page, title from the document's metadata."""
from __future__ import annotations

from pathlib import Path

from pypdf import PdfReader
from pypdf.errors import PdfReadError

from socle.rag.parsing.base import Limits, ParsedDocument, ParseError, Section, clean


def parse(path: Path, limits: Limits) -> ParsedDocument:
    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted:
            raise ParseError("The PDF is encrypted: remove its password before uploading it.")
        pages = len(reader.pages)
        if pages > limits.max_pages:
            raise ParseError(f"The PDF has {pages} pages, above the limit of {limits.max_pages}.")
        sections = [Section(text=text, page=number)
                    for number, page in enumerate(reader.pages, start=1) if (text := clean(page.extract_text() or ""))]
        title = (reader.metadata.title if reader.metadata else None) or None
    except ParseError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise ParseError(f"The PDF is corrupt or unreadable ({type(exc).__name__}).") from exc
    return ParsedDocument(sections=sections, title=clean(title) if title else None, pages=pages)
