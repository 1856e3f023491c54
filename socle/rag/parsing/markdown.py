"""Markdown, with markdown-it-py (MIT): text under its headings, markup removed."""
from __future__ import annotations

from pathlib import Path

from markdown_it import MarkdownIt

from socle.rag.parsing.base import Limits, ParsedDocument
from socle.rag.parsing.sections import SectionBuilder
from socle.rag.parsing.text import decode

_MARKDOWN = MarkdownIt("commonmark").enable("table")


def parse(path: Path, limits: Limits) -> ParsedDocument:
    tokens = _MARKDOWN.parse(decode(path.read_bytes()))
    builder = SectionBuilder()
    title: str | None = None
    in_heading = False
    for token in tokens:
        if token.type == "heading_open":
            in_heading = True
        elif token.type == "heading_close":
            in_heading = False
        elif token.type == "inline":
            words = "".join(child.content for child in token.children or () if child.type in ("text", "code_inline"))
            if in_heading:
                title = title or words
                builder.heading(words)
            else:
                builder.line(words)
        elif token.type in ("fence", "code_block"):
            builder.line(token.content)
    return ParsedDocument(sections=builder.sections(), title=title)
