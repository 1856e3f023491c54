"""Search by need over the catalogue: the platform's hybrid search (its French lexical analyser and its
embedding model, fused by reciprocal rank fusion with the platform's settings), over an index of the
catalogue kept in memory.

Why not a platform collection: the catalogue is small (hundreds of solutions), readable by every user,
structured (a family, facets) and edited field by field; a collection would need an owner, files, and an
ingestion per edit. Each solution's vector is stored in its row (computed once per text and model), and
the index is rebuilt when the table changes (its row count or latest update differ), so every process of
the gateway sees an edit at its next search.

What is indexed of a solution: its name, family (label and the family's everyday description), editor,
description, keywords and integration. A result says why it matched: the words it shares with the need and
whether it is close in meaning.
"""
from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from socle.apps.panorama.vocabulary import FAMILY_BY_CODE
from socle.rag.lexical import query_terms
from socle.rag.search import Fusion
from socle.text import terms

Embed = Callable[[list[str], str], Awaitable[np.ndarray]]
"""(texts, input type "query" or "passage") → one unit vector per text; raises when the model cannot answer."""

_WORD = re.compile(r"[\w'’-]+")
_ELISION = re.compile(r"^(?:l|d|j|m|n|s|t|c|qu|jusqu|lorsqu|puisqu|quoiqu)['’]")
K1, B = 1.2, 0.75  # BM25, as the stores' full-text engines rank
SEMANTIC_CLOSE = 0.80  # cosine above which a result is said to be close in meaning (e5's scale)


@dataclass(frozen=True, slots=True)
class Indexed:
    """One solution as the index knows it."""

    id: int
    slug: str
    name: str
    family: str
    text: str  # what is searched: the solution's own words and its family's
    own: str  # the solution's own words: what a result's reason quotes
    updated_at: datetime
    vector: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class Match:
    id: int
    slug: str
    name: str
    family: str
    score: float
    similarity: float | None  # cosine with the need, when both have vectors
    shared: list[str]  # the need's words the solution's text holds, as the solution writes them
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"solution_id": self.id, "slug": self.slug, "name": self.name, "family": self.family,
                "score": round(self.score, 5), "similarity": None if self.similarity is None
                else round(self.similarity, 4), "shared": self.shared, "reason": self.reason}


def indexed_text(name: str, family: str, editor: str, description: str, keywords: Sequence[str],
                 integration: str) -> str:
    fam = FAMILY_BY_CODE.get(family)
    parts = [name, fam.label if fam else family, description, ", ".join(keywords),
             fam.description if fam else "", integration, editor]
    return ". ".join(p for p in parts if p)


class CatalogueIndex:
    """BM25 over the analysed words and cosine over the vectors, fused; immutable once built."""

    def __init__(self, entries: Sequence[Indexed], fusion: Fusion = Fusion()) -> None:
        self.entries = list(entries)
        self.fusion = fusion
        self._terms = [Counter(terms(e.text)) for e in self.entries]
        self._lengths = np.array([sum(t.values()) for t in self._terms], dtype=np.float64)
        self._average = float(self._lengths.mean()) if self.entries else 0.0
        self._documents: Counter[str] = Counter(w for t in self._terms for w in t)
        self._surface = [_surface_words(e.own) for e in self.entries]
        with_vectors = [i for i, e in enumerate(self.entries) if e.vector is not None]
        self._vector_rows = np.array(with_vectors, dtype=np.int64)
        self._vectors = (np.stack([self.entries[i].vector for i in with_vectors])  # type: ignore[misc]
                         if with_vectors else np.zeros((0, 0), dtype=np.float32))

    def lexical(self, need: str) -> list[tuple[int, float]]:
        """(entry, BM25 score) of the entries sharing a word with the need, best first."""
        words = query_terms(need)
        count = len(self.entries)
        scores = np.zeros(count)
        for word in words:
            frequency = self._documents.get(word, 0)
            if not frequency:
                continue
            idf = math.log(1 + (count - frequency + 0.5) / (frequency + 0.5))
            for i, counted in enumerate(self._terms):
                tf = counted.get(word, 0)
                if tf:
                    norm = K1 * (1 - B + B * self._lengths[i] / (self._average or 1.0))
                    scores[i] += idf * tf * (K1 + 1) / (tf + norm)
        ranked = np.argsort(-scores, kind="stable")
        return [(int(i), float(scores[i])) for i in ranked if scores[i] > 0]

    def semantic(self, vector: np.ndarray | None) -> list[tuple[int, float]]:
        """(entry, cosine) of every entry with a vector, nearest first."""
        if vector is None or not len(self._vector_rows):
            return []
        similarity = self._vectors @ vector
        order = np.argsort(-similarity, kind="stable")
        return [(int(self._vector_rows[i]), float(similarity[i])) for i in order]

    def search(self, need: str, vector: np.ndarray | None, *, k: int = 10,
               families: Sequence[str] = ()) -> list[Match]:
        """The solutions closest to the need, fused by reciprocal rank; ``families`` restricts them."""
        keep = set(families)

        def allowed(hits: list[tuple[int, float]]) -> list[tuple[int, float]]:
            return [h for h in hits if not keep or self.entries[h[0]].family in keep][: max(k, self.fusion.depth)]

        lexical, semantic = allowed(self.lexical(need)), allowed(self.semantic(vector))
        fusion = self.fusion
        scores: dict[int, float] = {}
        ranks: dict[int, tuple[int, int]] = {}
        absent = max(len(lexical), len(semantic)) + 1
        for rank, (i, _) in enumerate(lexical, start=1):
            scores[i] = scores.get(i, 0.0) + fusion.lexical_weight / (fusion.k + rank)
            ranks[i] = (rank, absent)
        cosine = dict(semantic)
        for rank, (i, _) in enumerate(semantic, start=1):
            scores[i] = scores.get(i, 0.0) + fusion.semantic_weight / (fusion.k + rank)
            ranks[i] = (ranks.get(i, (absent, absent))[0], rank)
        order = sorted(scores, key=lambda i: (-scores[i], *ranks[i], i))[:k]
        wanted = set(query_terms(need))
        return [self._match(i, scores[i], cosine.get(i), wanted) for i in order]

    def _match(self, i: int, score: float, similarity: float | None, wanted: set[str]) -> Match:
        entry = self.entries[i]
        shared = [surface for folded, surface in self._surface[i].items() if folded in wanted][:6]
        family = FAMILY_BY_CODE.get(entry.family)
        reasons = [f"Famille « {family.label if family else entry.family} »"]
        if shared:
            reasons.append("mots en commun : " + ", ".join(shared))
        if similarity is not None and similarity >= SEMANTIC_CLOSE:
            reasons.append("proche par le sens")
        return Match(entry.id, entry.slug, entry.name, entry.family, score, similarity, shared,
                     " ; ".join(reasons) + ".")


def _surface_words(text: str) -> dict[str, str]:
    """Each analysed word of a text → the word as the text writes it (its first occurrence), to show."""
    surface: dict[str, str] = {}
    for word in _WORD.findall(text):
        bare = _ELISION.sub("", word.lower()).strip("-'’")
        found = terms(bare)
        for folded in found:
            surface.setdefault(folded, bare if len(found) == 1 else folded)
    return surface


class Indexer:
    """The index of the catalogue, rebuilt when the catalogue changed; one rebuild at a time."""

    def __init__(self, fusion: Fusion = Fusion()) -> None:
        self.fusion = fusion
        self._index = CatalogueIndex([], fusion)
        self._signature: tuple[object, ...] | None = None
        self._lock = asyncio.Lock()

    def current(self, signature: tuple[object, ...]) -> CatalogueIndex | None:
        return self._index if signature == self._signature else None

    async def rebuild(self, signature: tuple[object, ...],
                      load: Callable[[], Awaitable[list[Indexed]]]) -> CatalogueIndex:
        async with self._lock:
            if signature != self._signature:
                self._index = CatalogueIndex(await load(), self.fusion)
                self._signature = signature
            return self._index
