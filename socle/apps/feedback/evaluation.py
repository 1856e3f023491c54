"""How well an analysis agrees with the labels a dataset came with: precision, recall and F1 per label
(each theme and sub-theme, each sentiment, urgency), and their macro averages per kind of label. Only the
messages that carry ground truth for a kind count for that kind."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from socle.apps.feedback.service import AnnotatedMessage
from socle.apps.feedback.taxonomy import SENTIMENTS, Taxonomy


@dataclass(frozen=True, slots=True)
class Score:
    kind: str  # theme | subtheme | sentiment | urgent
    label: str
    support: int  # messages that truly carry the label
    predicted: int
    precision: float
    recall: float
    f1: float

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "label": self.label, "support": self.support, "predicted": self.predicted,
                "precision": self.precision, "recall": self.recall, "f1": self.f1}


def _score(kind: str, label: str, pairs: Iterable[tuple[bool, bool]]) -> Score:
    tp = fp = fn = 0
    for truth, guess in pairs:
        tp += truth and guess
        fp += guess and not truth
        fn += truth and not guess
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Score(kind, label, tp + fn, tp + fp, round(precision, 3), round(recall, 3), round(f1, 3))


def evaluate(rows: list[AnnotatedMessage], taxonomy: Taxonomy) -> list[Score]:
    """Per-label scores, each kind closed by its macro average (label ``macro``)."""
    labelled = [(r.message.labels or {}, r.annotation.result or {}) for r in rows]
    scores: list[Score] = []
    for kind, field, labels in (("theme", "themes", taxonomy.theme_keys),
                                ("subtheme", "subthemes", taxonomy.subtheme_keys)):
        truths = [(set(t[field]), {x["label"] for x in a.get(field, [])}) for t, a in labelled if field in t]
        scores += _with_macro(kind, [_score(kind, label, ((label in t, label in g) for t, g in truths))
                                     for label in labels])
    moods = [(t["sentiment"], a.get("sentiment")) for t, a in labelled if "sentiment" in t]
    scores += _with_macro("sentiment", [_score("sentiment", m, ((t == m, g == m) for t, g in moods))
                                        for m in SENTIMENTS])
    urgent = [(bool(t["urgent"]), bool(a.get("urgent"))) for t, a in labelled if "urgent" in t]
    if urgent:
        scores.append(_score("urgent", "urgent", urgent))
    return [s for s in scores if s.support or s.predicted or s.label == "macro"]


def _with_macro(kind: str, scores: list[Score]) -> list[Score]:
    present = [s for s in scores if s.support]
    if not present:
        return []
    mean = lambda values: round(sum(values) / len(present), 3)  # noqa: E731
    return [*scores, Score(kind, "macro", sum(s.support for s in present), sum(s.predicted for s in present),
                           mean(s.precision for s in present), mean(s.recall for s in present),
                           mean(s.f1 for s in present))]
