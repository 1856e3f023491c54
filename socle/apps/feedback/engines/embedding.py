"""The offline engine: classifies with the multilingual embedding model, never with a chat model.

Each label's anchors are its description and the taxonomy's labelled example sentences; when the dataset
came with labels of its own (a Services Publics+ export does), its labelled messages are anchors too, each
kind of label learnt from the messages that carry it — but never to annotate the messages they are: the
labelled messages are split in ``FOLDS`` folds by id, and each is classified by classifiers fitted without
its fold (so an evaluation over them is cross-validated, held out). One
logistic regression per label (one-vs-rest: themes and sub-themes are multi-label) and one multinomial for
the sentiment; each label's decision threshold is calibrated on out-of-fold predictions over its training
set, and the predicted probability is the confidence. Urgency adds the taxonomy's cue phrases, which mark a
message urgent on their own; a message read as positive is never urgent, and the classifier alone flags a
message only from ``URGENT_FLOOR`` up. The irritant is the message's own sentence that carries the complaint: an
extract, never an invention.
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from cachetools import LRUCache

from socle.apps.feedback.engines.base import EngineContext, Example, Item, Outcome
from socle.apps.feedback.schema import IRRITANT_MAX, MAX_LABELS
from socle.apps.feedback.taxonomy import SENTIMENTS, Taxonomy
from socle.formats import french_number
from socle.text import fold, terms

if TYPE_CHECKING:  # scikit-learn is imported when a classifier is first fitted: not at every start-up
    from sklearn.linear_model import LogisticRegression

_SENTENCE = re.compile(r"(?<=[.!?…])\s+|\n+")
_NEGATIVE_CUES = frozenset(fold(w) for w in """pas jamais rien aucun aucune impossible toujours attente attendre
attends délai délais retard bloqué bloque bug erreur perdu perdue personne refus refusé inadmissible honteux
scandaleux inacceptable marre relance relancé plainte mépris désagréable incompréhensible compliqué""".split())
_MIN_CONFIDENCE = 0.3  # below this, a message has no theme at all
_C = 16.0  # inverse regularisation: chosen on the dataset of datasets/feedback (bench/README.md)
_FOLDS = 3  # for the thresholds' calibration
_CACHED_VECTORS = 50_000
FOLDS = 5  # the dataset's labelled messages, by id: each is classified by classifiers that never saw its fold
MAX_EXAMPLES = 5_000  # labelled messages learnt from, at most (an even sample of them beyond)
# The least probability of urgency that flags a message, whatever the calibrated threshold: with the anchors
# alone that threshold flagged 16 of the 35 messages of the Services Publics+ sample and 111 of the 302 of
# datasets/feedback (49 truly urgent). At 0.65: 6 of 35, and 60 of 302 (urgent F1 0.56 -> 0.70); learning
# from the labels, 40 of 302 (F1 0.765 -> 0.764, precision 0.74 -> 0.85). Chosen on that dataset: tuned, not
# held out.
URGENT_FLOOR = 0.65
_WORD = re.compile(r"\w+(?:['’]\w+)*")


@dataclass(slots=True)
class _Classifier:
    labels: tuple[str, ...]
    models: list[LogisticRegression]
    thresholds: np.ndarray

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        return np.stack([m.predict_proba(vectors)[:, 1] for m in self.models], axis=1)


class _Centroids:
    """Each class scored by the mean cosine of a message with the class's anchors, probabilities by a softmax
    of those means: with the anchors alone, it places long real messages better than a regression fitted
    on short sentences (sentiment macro F1 0.62 against 0.52 on the repository's dataset, where the
    regression calls most messages neutral)."""

    TEMPERATURE = 0.02  # e5's cosines differ by hundredths

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.classes_ = np.unique(y)
        self._centres = np.stack([x[y == label].mean(axis=0) for label in self.classes_])  # mean of cosines

    def predict_proba(self, vectors: np.ndarray) -> np.ndarray:
        scores = vectors @ self._centres.T / self.TEMPERATURE
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        return scores / scores.sum(axis=1, keepdims=True)


@dataclass(slots=True)
class _Classifiers:
    themes: _Classifier
    subthemes: _Classifier
    sentiment: LogisticRegression | _Centroids
    urgency: _Classifier  # one label, so that its threshold is calibrated like the themes'


@dataclass(slots=True)
class _Training:
    """Vectors and their labels, per kind: ``multi`` kinds as a boolean matrix, the others as a column."""
    x: dict[str, list[np.ndarray]]
    y: dict[str, list[Any]]

    @classmethod
    def empty(cls) -> _Training:
        kinds = ("theme", "subtheme", "sentiment", "urgent")
        return cls({k: [] for k in kinds}, {k: [] for k in kinds})

    def add(self, kind: str, vector: np.ndarray, label: Any) -> None:
        self.x[kind].append(vector)
        self.y[kind].append(label)

    def arrays(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        return np.stack(self.x[kind]), np.asarray(self.y[kind])


def _fit_one_vs_rest(labels: tuple[str, ...], x: np.ndarray, y: np.ndarray) -> _Classifier:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    models, thresholds = [], []
    for i in range(len(labels)):
        target = y[:, i].astype(int)
        model = LogisticRegression(C=_C, class_weight="balanced", max_iter=3000)
        splits = min(_FOLDS, int(target.sum()), int(len(target) - target.sum()))
        if splits >= 2:  # enough to hold some out: the threshold that served the held-out best
            folds = StratifiedKFold(n_splits=splits, shuffle=True, random_state=0)
            held_out = cross_val_predict(model, x, target, cv=folds, method="predict_proba")[:, 1]
            candidates = np.linspace(0.2, 0.8, 25)
            scores = [f1_score(target, held_out >= t, zero_division=0) for t in candidates]
            thresholds.append(float(candidates[int(np.argmax(scores))]))
        else:
            thresholds.append(0.5)
        models.append(model.fit(x, target))
    return _Classifier(labels, models, np.asarray(thresholds))


def _fit(taxonomy: Taxonomy, training: _Training, *, learned: bool) -> _Classifiers:
    """``learned``: the training holds the dataset's own labelled messages, not only the anchors."""
    from sklearn.linear_model import LogisticRegression

    themes, subthemes = taxonomy.theme_keys, taxonomy.subtheme_keys
    x, y = training.arrays("theme")
    theme_model = _fit_one_vs_rest(themes, x, y)
    x, y = training.arrays("subtheme")
    subtheme_model = _fit_one_vs_rest(subthemes, x, y)
    x, y = training.arrays("sentiment")
    sentiment = LogisticRegression(C=_C, class_weight="balanced", max_iter=3000).fit(x, y) if learned \
        else _Centroids(x, y)
    x, y = training.arrays("urgent")
    urgency = _fit_one_vs_rest(("urgent",), x, y.astype(bool)[:, None])
    return _Classifiers(theme_model, subtheme_model, sentiment, urgency)


class EmbeddingEngine:
    name = "embedding"
    batch_size = 64

    def __init__(self, context: EngineContext, model: str) -> None:
        self.context = context
        self.model = model  # the embeddings model
        self._anchors: _Training | None = None
        self._anchor_only: _Classifiers | None = None
        self._vectors: LRUCache[str, np.ndarray] = LRUCache(_CACHED_VECTORS)  # by text: examples are reused
        self._fitted: LRUCache[tuple[int, int, int | None], _Classifiers] = LRUCache(2 * (FOLDS + 1))
        self._lock = asyncio.Lock()

    def estimate_tokens(self, text: str) -> int:
        return len(text) // 3 + 8  # e5's tokenizer cuts French in about 3.5 characters a token

    async def prepare(self) -> None:
        async with self._lock:
            if self._anchor_only is None:
                anchors = await self._anchor_training()
                self._anchor_only = await asyncio.to_thread(_fit, self.context.taxonomy, anchors, learned=False)

    async def annotate(self, items: list[Item], examples: Sequence[Example] = ()) -> list[Outcome]:
        await self.prepare()
        examples = _capped(examples)
        labelled = {e.message_id for e in examples}
        tokens = await self._embed_missing([item.text for item in items] + [e.text for e in examples])
        vectors = np.stack([self._vectors[item.text] for item in items])
        # A labelled message is classified by classifiers fitted without its fold; the others by all examples.
        groups: dict[int | None, list[int]] = {}
        for index, item in enumerate(items):
            groups.setdefault(item.message_id % FOLDS if item.message_id in labelled else None, []).append(index)
        results: list[dict[str, Any]] = [{} for _ in items]
        for held_out, indices in groups.items():
            classifiers = await self._learnt(examples, held_out) if examples else self._anchor_only
            assert classifiers is not None
            part = await asyncio.to_thread(self._classify, [items[i] for i in indices], vectors[indices], classifiers)
            for index, result in zip(indices, part, strict=True):
                results[index] = result
        share = tokens // max(len(items), 1)
        return [Outcome(item.message_id, result, tokens=share, vector=vector)
                for item, result, vector in zip(items, results, vectors, strict=True)]

    async def _learnt(self, examples: list[Example], held_out: int | None) -> _Classifiers:
        """Classifiers fitted on the anchors and the examples outside fold ``held_out`` (all of them for
        ``None``): once per set of examples and fold, so a whole analysis costs ``FOLDS + 1`` fits."""
        key = (hash(tuple(e.message_id for e in examples)), len(examples), held_out)
        async with self._lock:
            if key not in self._fitted:
                assert self._anchors is not None
                training = _Training({k: list(v) for k, v in self._anchors.x.items()},
                                     {k: list(v) for k, v in self._anchors.y.items()})
                for example in examples:
                    if held_out is None or example.message_id % FOLDS != held_out:
                        _learn(training, self.context.taxonomy, self._vectors[example.text], example.labels)
                self._fitted[key] = await asyncio.to_thread(_fit, self.context.taxonomy, training, learned=True)
            return self._fitted[key]

    async def _embed_missing(self, texts: list[str]) -> int:
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        tokens = 0
        for start in range(0, len(missing), 64):
            part = missing[start:start + 64]
            vectors, used = await self.context.embed(part, self.model)
            tokens += used
            for text, vector in zip(part, vectors, strict=True):
                self._vectors[text] = vector
        return tokens

    def _classify(self, items: list[Item], vectors: np.ndarray, fitted: _Classifiers) -> list[dict[str, Any]]:
        taxonomy = self.context.taxonomy
        theme_p, subtheme_p = fitted.themes.probabilities(vectors), fitted.subthemes.probabilities(vectors)
        sentiment_p = fitted.sentiment.predict_proba(vectors)
        urgent_p = fitted.urgency.probabilities(vectors)[:, 0]
        urgent_at = max(float(fitted.urgency.thresholds[0]), URGENT_FLOOR)
        results = []
        for row, item in enumerate(items):
            mood = str(fitted.sentiment.classes_[int(np.argmax(sentiment_p[row]))])
            reason = None if mood == "positive" else _urgency_reason(item.text, taxonomy, float(urgent_p[row]),
                                                                       urgent_at)
            chosen_subthemes = _chosen(fitted.subthemes, subtheme_p[row])
            results.append({
                "themes": _chosen(fitted.themes, theme_p[row]),
                "subthemes": chosen_subthemes,
                "sentiment": mood,
                "sentiment_confidence": round(float(np.max(sentiment_p[row])), 3),
                "irritant": _irritant(item.text, taxonomy, chosen_subthemes) if mood == "negative" else None,
                "urgent": reason is not None,
                "urgency_reason": reason,
            })
        return results

    async def _anchor_training(self) -> _Training:
        """The taxonomy's anchors as training data; their embeddings cached on disk by model and taxonomy."""
        if self._anchors is not None:
            return self._anchors
        taxonomy = self.context.taxonomy
        texts = _anchor_texts(taxonomy)
        flat = [text for _, _, text in texts]
        path = self.context.cache_dir / f"anchors-{re.sub(r'[^A-Za-z0-9_.-]', '_', self.model)}-" \
                                        f"{taxonomy.fingerprint}.npy"
        if path.exists():
            vectors = np.load(path)
        else:
            parts = []
            for start in range(0, len(flat), 64):
                part, _ = await self.context.embed(flat[start:start + 64], self.model)
                parts.append(part)
            vectors = np.concatenate(parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, vectors)
        training = _Training.empty()
        for (kind, label, _), vector in zip(texts, vectors, strict=True):
            _learn(training, taxonomy, vector, {kind: label})
        self._anchors = training
        return training


def _capped(examples: Sequence[Example]) -> list[Example]:
    """At most ``MAX_EXAMPLES``, taken evenly through the dataset: the fits stay quick on a large export."""
    if len(examples) <= MAX_EXAMPLES:
        return list(examples)
    step = len(examples) / MAX_EXAMPLES
    return [examples[int(i * step)] for i in range(MAX_EXAMPLES)]


def _anchor_texts(taxonomy: Taxonomy) -> list[tuple[str, Any, str]]:
    """(kind, label, sentence) for every anchor: each label's description and its examples."""
    texts: list[tuple[str, Any, str]] = []
    for kind, labels in (("themes", taxonomy.themes), ("subthemes", taxonomy.subthemes),
                         ("sentiment", taxonomy.sentiments)):
        example_kind = {"themes": "theme", "subthemes": "subtheme"}.get(kind, kind)
        for label in labels:
            value: Any = [label.key] if kind != "sentiment" else label.key
            texts += [(kind, value, t) for t in (label.description,
                                                 *taxonomy.examples.get((example_kind, label.key), ()))]
    texts += [("urgent", True, t) for t in (taxonomy.urgency, *taxonomy.examples.get(("urgent", "true"), ()))]
    texts += [("urgent", False, t) for t in taxonomy.examples.get(("urgent", "false"), ())
              or ("Je voudrais simplement un renseignement sur ma démarche.",)]
    return texts


def _learn(training: _Training, taxonomy: Taxonomy, vector: np.ndarray, labels: dict[str, Any]) -> None:
    """Add a labelled vector for each kind of label it carries (labels outside the taxonomy are ignored)."""
    for kind, field, keys in (("theme", "themes", taxonomy.theme_keys),
                              ("subtheme", "subthemes", taxonomy.subtheme_keys)):
        if isinstance(labels.get(field), list):
            training.add(kind, vector, np.asarray([key in labels[field] for key in keys]))
    if labels.get("sentiment") in SENTIMENTS:
        training.add("sentiment", vector, labels["sentiment"])
    if isinstance(labels.get("urgent"), bool):
        training.add("urgent", vector, labels["urgent"])


def _chosen(classifier: _Classifier, probabilities: np.ndarray) -> list[dict[str, Any]]:
    picked = [i for i in np.argsort(-probabilities) if probabilities[i] >= classifier.thresholds[i]]
    if not picked and probabilities.max() >= _MIN_CONFIDENCE:
        picked = [int(np.argmax(probabilities))]
    return [{"label": classifier.labels[i], "confidence": round(float(probabilities[i]), 3)}
            for i in picked[:MAX_LABELS]]


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if len(s.strip()) > 3]


def _irritant(text: str, taxonomy: Taxonomy, subthemes: list[dict[str, Any]]) -> str | None:
    """The sentence that says what went wrong: most complaint words, then most words of its sub-theme."""
    sentences = _sentences(text)
    if not sentences:
        return None
    vocabulary: set[str] = set()
    for chosen in subthemes[:1]:
        label = next(s for s in taxonomy.subthemes if s.key == chosen["label"])
        for sentence in (label.description, *taxonomy.examples.get(("subtheme", label.key), ())):
            vocabulary.update(terms(sentence))

    def weight(sentence: str) -> tuple[int, int]:
        words = fold(sentence).split()
        complaints = sum(w.strip(".,;:!?'\"()«»") in _NEGATIVE_CUES for w in words)
        return complaints, len(vocabulary & set(terms(sentence)))

    best = max(sentences, key=weight)
    return best if len(best) <= IRRITANT_MAX else best[: IRRITANT_MAX - 1].rsplit(" ", 1)[0] + "…"


def _urgency_reason(text: str, taxonomy: Taxonomy, probability: float, threshold: float) -> str | None:
    """Why a message is urgent, in French for the agent who reads it; None when it is not."""
    folded = fold(text)
    cues = [cue for cue in taxonomy.urgency_cues if cue in folded]
    if cues:
        quoted = ", ".join(f"« {_quoted(text, cue)} »" for cue in cues[:3])
        return f"Mots d'alerte : {quoted}."
    if probability >= threshold:
        return (f"Ressemble aux messages urgents (probabilité estimée : {french_number(probability, 2)}, "
                f"seuil : {french_number(threshold, 2)}).")
    return None


def _quoted(text: str, cue: str) -> str:
    """The words of ``text`` where a (folded) cue was found, as the person wrote them: "expulsés" for
    "expuls"."""
    words = _WORD.findall(text)
    joined = " ".join(fold(word) for word in words)
    at = joined.find(cue)
    if at < 0:
        return cue
    first, last = joined.count(" ", 0, at), joined.count(" ", 0, at + len(cue) - 1)
    return " ".join(words[first:last + 1])
