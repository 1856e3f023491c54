"""Long lists shown a page at a time, with the DSFR's pagination component (``_pagination.html``)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import urlencode


@dataclass(frozen=True, slots=True)
class Paging:
    """Page ``page`` (from 1) of ``total`` items, ``per_page`` at a time, at ``path``?page=N."""

    page: int
    per_page: int
    total: int
    path: str

    @classmethod
    def of(cls, requested: str | int | None, total: int, *, per_page: int, path: str) -> Paging:
        """Any page asked for, brought within the pages there are (a stale link shows the last one)."""
        try:
            page = int(requested or 1)
        except ValueError:
            page = 1
        pages = max(1, math.ceil(total / per_page))
        return cls(min(max(page, 1), pages), per_page, total, path)

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    def url(self, page: int) -> str:
        separator = "&" if "?" in self.path else "?"  # a path that carries a page's filters
        return self.path if page == 1 else f"{self.path}{separator}{urlencode({'page': page})}"

    def numbers(self) -> list[int | None]:
        """The pages to link: the first, the last, and two around this one; None where some are left out."""
        shown = sorted({1, self.pages, *range(max(1, self.page - 2), min(self.pages, self.page + 2) + 1)})
        out: list[int | None] = []
        for number in shown:
            if out and number - (out[-1] or 0) > 1:
                out.append(None)
            out.append(number)
        return out
