"""Plain text, CSV and JSON (read as text), in whatever encoding they come (charset-normalizer, MIT)."""
from __future__ import annotations

from pathlib import Path

from charset_normalizer import from_bytes

from socle.rag.parsing.base import Limits, ParsedDocument, ParseError, Section, clean


def decode(raw: bytes) -> str:
    if not raw:
        return ""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        best = from_bytes(raw).best()
        if best is None:
            raise ParseError("The file is not text in any known encoding.") from None
        return str(best)


def parse(path: Path, limits: Limits) -> ParsedDocument:
    raw = path.read_bytes()
    if b"\x00" in raw[:8192]:
        raise ParseError("The file is binary, not text: check its extension.")
    text = clean(decode(raw))
    return ParsedDocument(sections=[Section(text=text)] if text else [])
