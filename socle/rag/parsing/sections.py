"""Gathering lines into sections under their headings, for the parsers of structured formats."""
from __future__ import annotations

from socle.rag.parsing.base import Section, clean


class SectionBuilder:
    def __init__(self) -> None:
        self._done: list[Section] = []
        self._title: str | None = None
        self._lines: list[str] = []

    def heading(self, text: str) -> None:
        self._flush()
        self._title = clean(text) or self._title

    def line(self, text: str) -> None:
        self._lines.append(text)

    def _flush(self) -> None:
        text = clean("\n".join(self._lines))
        if text:
            self._done.append(Section(text=text, title=self._title))
        self._lines = []

    def sections(self) -> list[Section]:
        self._flush()
        return self._done
