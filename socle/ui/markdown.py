"""A model's answer as HTML, safely: Markdown is rendered on the server with raw HTML disabled (a model's
``<script>`` comes out as text), dangerous link schemes refused (markdown-it's own check), and images off so
that an answer cannot make the browser fetch an address of the model's choosing."""
from __future__ import annotations

from markdown_it import MarkdownIt

_RENDERER = (MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
             .enable(["table", "strikethrough"]).disable("image"))


def to_html(text: str) -> str:
    return _RENDERER.render(text)
