"""The labels an analysis assigns: themes (Services Publics+'s engagements by default), their sub-themes,
sentiments and urgency, each with a French description that the engines read."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from socle.errors import InvalidRequest
from socle.text import fold

DEFAULT_TAXONOMY = Path(__file__).with_name("taxonomy.yaml")
SENTIMENTS = ("negative", "neutral", "positive")
SENTIMENT_FR = {"negative": "négatif", "neutral": "neutre", "positive": "positif"}


@dataclass(frozen=True, slots=True)
class Label:
    key: str
    label: str  # as people read it
    description: str
    theme: str | None = None  # a sub-theme's engagement


@dataclass(frozen=True, slots=True)
class Taxonomy:
    themes: tuple[Label, ...]
    subthemes: tuple[Label, ...]
    sentiments: tuple[Label, ...]
    urgency: str
    urgency_cues: tuple[str, ...] = ()  # folded phrases that make a message urgent on their own
    examples: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)  # (kind, key) → sentences

    @property
    def theme_keys(self) -> tuple[str, ...]:
        return tuple(t.key for t in self.themes)

    @property
    def subtheme_keys(self) -> tuple[str, ...]:
        return tuple(s.key for s in self.subthemes)

    def subtheme_label(self, key: str) -> str:
        return next((s.label for s in self.subthemes if s.key == key), key)

    @property
    def fingerprint(self) -> str:
        """Changes whenever a label, a description or an example does: keys the engines' caches."""
        raw = json.dumps([[repr(t) for t in (*self.themes, *self.subthemes, *self.sentiments)], self.urgency,
                          self.urgency_cues,
                          sorted((f"{k[0]}:{k[1]}", list(v)) for k, v in self.examples.items())], ensure_ascii=False)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


def load_taxonomy(path: Path | None = None) -> Taxonomy:
    """Read a taxonomy file (YAML) and the anchor examples that lie beside it (``*_examples.jsonl``)."""
    path = path or DEFAULT_TAXONOMY
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        themes = tuple(Label(t["label"], t["label"], t["description"]) for t in raw["themes"])
        theme_keys = {t.key for t in themes}
        subthemes = tuple(Label(s["key"], s["label"], s["description"], s.get("theme"))
                          for s in raw.get("subthemes") or [])
        sentiments = tuple(Label(s["label"], SENTIMENT_FR.get(s["label"], s["label"]), s["description"])
                           for s in raw["sentiments"])
        urgency = raw["urgency"]["description"]
        cues = tuple(fold(c) for c in raw["urgency"].get("cues") or [])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise InvalidRequest(f"Feedback taxonomy {path}: {exc}") from exc
    if {s.key for s in sentiments} != set(SENTIMENTS):
        raise InvalidRequest(f"Feedback taxonomy {path}: sentiments must be exactly {', '.join(SENTIMENTS)}.")
    unknown = [s.key for s in subthemes if s.theme is not None and s.theme not in theme_keys]
    if unknown:
        raise InvalidRequest(f"Feedback taxonomy {path}: sub-themes {unknown} name an unknown theme.")
    return Taxonomy(themes, subthemes, sentiments, urgency, cues, _examples(path.with_name(f"{path.stem}_examples.jsonl")))


def _examples(path: Path) -> dict[tuple[str, str], tuple[str, ...]]:
    """Labelled sentences, one JSON object per line: ``{"label_type", "label", "text"}``."""
    if not path.exists():
        return {}
    found: dict[tuple[str, str], list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            label = item["label"]
            key = str(label).lower() if isinstance(label, bool) else str(label)  # urgent: "true" | "false"
            found.setdefault((item["label_type"], key), []).append(item["text"])
    return {key: tuple(texts) for key, texts in found.items()}
