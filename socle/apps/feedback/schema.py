"""The annotation of one message, as a JSON schema built from the taxonomy: what a model must answer
(``response_format``, compiled to a grammar by llama.cpp) and what every engine's output is checked against."""
from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from socle.apps.feedback.taxonomy import SENTIMENTS, Taxonomy

IRRITANT_MAX = 300
REPLY_MAX = 2000


MAX_LABELS = 3  # of each kind per message: more is noise, and bounds what a model may generate


def _scored(keys: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "array", "maxItems": min(MAX_LABELS, len(keys)), "uniqueItems": True, "items": {
        "type": "object", "additionalProperties": False, "required": ["label", "confidence"],
        "properties": {"label": {"enum": list(keys)}, "confidence": {"type": "number", "minimum": 0, "maximum": 1}}}}


def annotation_schema(taxonomy: Taxonomy) -> dict[str, Any]:
    """What a model must answer; an annotation may also carry the ``draft_reply`` written afterwards."""
    properties: dict[str, Any] = {
        "themes": _scored(taxonomy.theme_keys),
        "subthemes": _scored(taxonomy.subtheme_keys),
        "sentiment": {"enum": list(SENTIMENTS)},
        "sentiment_confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "irritant": {"type": ["string", "null"], "maxLength": IRRITANT_MAX},
        "urgent": {"type": "boolean"},
        "urgency_reason": {"type": ["string", "null"], "maxLength": IRRITANT_MAX},
    }
    return {"type": "object", "additionalProperties": False, "required": list(properties), "properties": properties}


class AnnotationValidator:
    """Checks an engine's output against the schema; says what is wrong in words a model can act upon."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.schema = annotation_schema(taxonomy)  # what a model is asked
        stored = {**self.schema, "properties": {**self.schema["properties"],
                                                "draft_reply": {"type": "string", "maxLength": REPLY_MAX}}}
        self._validator = Draft202012Validator(stored)

    def errors(self, value: object) -> list[str]:
        found = [f"{'/'.join(str(p) for p in e.absolute_path) or '(racine)'}: {e.message}"
                 for e in self._validator.iter_errors(value)]
        if not found and isinstance(value, dict):  # a label given twice (JSON schema cannot say it of objects)
            for field in ("themes", "subthemes"):
                labels = [item["label"] for item in value[field]]
                if len(set(labels)) != len(labels):
                    found.append(f"{field}: chaque étiquette ne doit figurer qu'une fois")
        return found[:5]
