"""A model's Markdown becomes HTML without any of the model's own HTML, links to scripts, or images."""
from __future__ import annotations

from socle.ui.markdown import to_html


def test_markdown_is_rendered_and_html_is_escaped() -> None:
    html = to_html("**gras** et `code`\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n"
                   "| a | b |\n|---|---|\n| 1 | 2 |")
    assert "<strong>gras</strong>" in html and "<code>code</code>" in html and "<table>" in html
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_dangerous_links_and_images_are_not_rendered() -> None:
    assert "href" not in to_html("[clic](javascript:alert(1)) [data](data:text/html;base64,PHNjcmlwdD4=)")
    assert "<img" not in to_html("![pisteur](https://ailleurs.example/pixel.png?secret=1)")
    assert '<a href="https://www.service-public.fr">' in to_html("[SP](https://www.service-public.fr)")
