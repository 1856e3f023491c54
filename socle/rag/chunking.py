"""Cutting parsed documents into chunks that respect their structure, with overlap.

Each section (the text under one heading) is chunked on its own, so a chunk never straddles two
headings; within a section, semchunk (MIT) cuts at the largest boundary that fits — paragraphs, then
lines, sentences, clauses, words. Sizes are in characters, as the Albert API's ``chunk_size`` and
``chunk_overlap`` are. Each chunk keeps its section's title and page, for display and for retrieval
(the title is searched with the chunk). Chunks shorter than ``min_size`` characters are dropped, as the
Albert API's ``chunk_min_size`` asks (a page number or a stray heading alone is noise in search results).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import semchunk

from socle.rag.parsing import ParsedDocument


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    text: str
    title: str | None = None
    page: int | None = None

    @property
    def searchable(self) -> str:
        """What is indexed and embedded: the heading gives a passage the context it lacks alone."""
        return f"{self.title}\n{self.text}" if self.title else self.text


@functools.lru_cache(maxsize=16)
def _chunker(size: int) -> semchunk.Chunker:
    return semchunk.chunkerify(len, size)


def chunk_document(document: ParsedDocument, *, size: int = 2048, overlap: int = 200,
                   min_size: int = 0) -> list[Chunk]:
    if size < 100:
        raise ValueError("chunk size must be at least 100 characters")
    if not 0 <= overlap < size // 2:
        raise ValueError("chunk overlap must be between 0 and half the chunk size")
    chunker = _chunker(size)
    chunks: list[Chunk] = []
    for section in document.sections:
        pieces = chunker(section.text, overlap=overlap or None) if len(section.text) > size else [section.text]
        for piece in pieces:
            if piece.strip() and len(piece.strip()) >= min_size:
                chunks.append(Chunk(index=len(chunks), text=piece.strip(), title=section.title, page=section.page))
    return chunks
