"""HTML, with selectolax (MIT, the Lexbor engine): visible text under its h1–h6 headings."""
from __future__ import annotations

from pathlib import Path

from selectolax.lexbor import LexborHTMLParser

from socle.rag.parsing.base import Limits, ParsedDocument, clean
from socle.rag.parsing.sections import SectionBuilder
from socle.rag.parsing.text import decode

_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_BLOCKS = _HEADINGS | {"p", "li", "td", "th", "pre", "blockquote", "dd", "dt", "figcaption", "caption"}


def parse(path: Path, limits: Limits) -> ParsedDocument:
    tree = LexborHTMLParser(decode(path.read_bytes()))
    title_node = tree.css_first("title")
    title = clean(title_node.text()) if title_node is not None else None
    for node in tree.css("script, style, noscript, template, nav, header, footer, svg, iframe"):
        node.decompose()
    builder = SectionBuilder()
    body = tree.body or tree.root
    if body is not None:
        for node in body.traverse():
            if node.tag in _HEADINGS:
                builder.heading(node.text(separator=" "))
            elif node.tag in _BLOCKS and not _inside_block(node):
                builder.line(node.text(separator=" "))
    sections = builder.sections()
    if not sections and body is not None:  # text outside any block element
        builder.line(body.text(separator="\n"))
        sections = builder.sections()
    return ParsedDocument(sections=sections, title=title or None)


def _inside_block(node) -> bool:  # type: ignore[no-untyped-def]
    parent = node.parent
    while parent is not None:
        if parent.tag in _BLOCKS:
            return True
        parent = parent.parent
    return False
