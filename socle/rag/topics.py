"""Emerging topics: groups of similar texts found by clustering their embeddings, each named and shown
with the texts closest to its centre. A shared service: the citizens' messages of an analysis, the needs
that administrations declare, any set of short French texts with their vectors. When the caller knows how
well a taxonomy explains each text (its best class's confidence), a group it explains poorly is flagged as
outside the taxonomy: what the team did not think of asking.

The embeddings are centred first: every French text about public services is close to every other in
e5's space, and what sets groups apart is the difference from that common part. Average-linkage clustering
on cosine distances, cut at a fixed distance, then keeps groups that mean one thing, whatever their number
(on the repository's dataset, centred average linkage gave coherent groups where HDBSCAN put most messages
in one); groups too small to speak for more than one message are left out. Past ``SAMPLE`` messages, a
deterministic sample is clustered and the others join the nearest group's centre when close enough.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from socle.text import fold, terms

REPRESENTATIVES = 3
OUTSIDE_TAXONOMY = 0.5  # a group whose messages' mean best-theme confidence is below this
DISTANCE = 0.8  # cosine distance at which groups stop merging
SAMPLE = 4000  # messages clustered at most (the clustering's memory grows with their square)
_COURTESY = frozenset(fold(w) for w in """bonjour bonsoir merci remercie remerciements madame monsieur mesdames
messieurs cordialement salutations sincerement beaucoup svp stp""".split())


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    size: int
    keywords: list[str]
    examples: list[str]  # the texts closest to the group's centre
    message_ids: list[int]
    theme_fit: float
    outside_taxonomy: bool

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "size": self.size, "keywords": self.keywords, "examples": self.examples,
                "message_ids": self.message_ids, "theme_fit": self.theme_fit,
                "outside_taxonomy": self.outside_taxonomy}


Namer = Callable[[list[str], list[str]], Awaitable[str | None]]  # (examples, keywords) → a name
Cleaner = Callable[[str], str]  # what of a text its keywords may come from (placeholders blanked, ...)


def clusters(vectors: np.ndarray, *, min_size: int | None = None, distance: float = DISTANCE) -> np.ndarray:
    """A group label per text; -1 for a text in no group large enough (``min_size``: by default a sixtieth
    of the texts, at least 5). ``distance``: where groups stop merging; centring spreads a small set more,
    so a few dozen texts need a wider cut than thousands."""
    count = len(vectors)
    size = min_size or max(5, count // 60)
    if count < 2 * size:
        return np.full(count, -1)
    centred = vectors - vectors.mean(axis=0)
    centred /= np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)
    sample = np.arange(count) if count <= SAMPLE else np.random.default_rng(0).choice(count, SAMPLE, replace=False)
    from sklearn.cluster import AgglomerativeClustering  # here: scikit-learn is too heavy for every start-up

    model = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                    distance_threshold=distance)
    labels = np.full(count, -1)
    labels[sample] = model.fit_predict(centred[sample])
    kept = [label for label, n in Counter(labels[sample].tolist()).items() if n >= size * len(sample) / count]
    labels[~np.isin(labels, kept)] = -1
    if count > len(sample) and kept:  # the others join the nearest group, if close enough
        centres = np.stack([centred[labels == label].mean(axis=0) for label in kept])
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        rest = np.setdiff1d(np.arange(count), sample)
        similarity = centred[rest] @ centres.T
        nearest = similarity.argmax(axis=1)
        close = similarity[np.arange(len(rest)), nearest] >= 1 - distance
        labels[rest[close]] = np.asarray(kept)[nearest[close]]
    return labels


async def emerging_topics(ids: list[int], texts: list[str], vectors: np.ndarray, theme_fit: list[float] | None = None,
                          *, namer: Namer | None = None, limit: int = 12, min_size: int | None = None,
                          distance: float = DISTANCE, clean: Cleaner | None = None) -> list[Topic]:
    """The largest groups first. Without ``theme_fit`` no group is said to be outside a taxonomy."""
    labels = clusters(vectors, min_size=min_size, distance=distance)
    fits = theme_fit if theme_fit is not None else [1.0] * len(texts)
    words = [_words(clean(text) if clean else text) for text in texts]
    corpus = Counter(w for ws in words for w in set(ws))
    topics = []
    for label, _ in Counter(labels[labels >= 0].tolist()).most_common(limit):
        members = np.flatnonzero(labels == label)
        centre = vectors[members].mean(axis=0)
        closest = members[np.argsort(-(vectors[members] @ centre))][:REPRESENTATIVES]
        keywords = _keywords([words[i] for i in members], corpus, len(texts))
        examples = [texts[i] for i in closest]
        name = (await namer(examples, keywords) if namer else None) or " · ".join(keywords[:3])
        fit = float(np.mean([fits[i] for i in members]))
        topics.append(Topic(name, len(members), keywords, examples, [ids[i] for i in members], round(fit, 3),
                            fit < OUTSIDE_TAXONOMY))
    return topics


def _words(text: str) -> list[str]:
    return [w for w in terms(text) if len(w) > 2 and not w.isdigit() and w not in _COURTESY]


def _keywords(groups: list[list[str]], corpus: Counter[str], documents: int, count: int = 6) -> list[str]:
    """The words that set a group apart: frequent in it, rare elsewhere (class-based TF-IDF)."""
    inside = Counter(w for words in groups for w in set(words))
    scored = {word: n / len(groups) * np.log(1 + documents / corpus[word]) for word, n in inside.items() if n > 1}
    return [w for w, _ in sorted(scored.items(), key=lambda kv: -kv[1])[:count]]
