"""What every engine offers the analysis: annotate a batch of (pseudonymised) messages, and say what
that will cost before it starts."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from socle.apps.feedback.pii import without_placeholders
from socle.apps.feedback.schema import AnnotationValidator
from socle.apps.feedback.taxonomy import Taxonomy
from socle.endpoints import Endpoint
from socle.identity.permissions import Principal
from socle.inference.service import InferenceService


@dataclass(frozen=True, slots=True)
class Item:
    message_id: int
    text: str  # pseudonymised: no engine ever sees the personal data


@dataclass(frozen=True, slots=True)
class Example:
    """A message of the dataset that came with labels (themes, subthemes, sentiment, urgent: any of them):
    an engine may learn from it, but never to annotate that very message."""

    message_id: int
    text: str  # pseudonymised
    labels: dict[str, Any]


@dataclass(slots=True)
class Outcome:
    message_id: int
    result: dict[str, Any] | None  # schema-valid, or None with ``error``
    error: str | None = None
    tokens: int = 0
    attempts: int = 1
    vector: np.ndarray | None = None  # the message's embedding, kept for the emerging topics


class Interrupted(Exception):
    """A batch cut short (the owner's quota refused a call): ``outcomes`` holds what was done before, which
    is kept; ``cause`` says why the rest was not."""

    def __init__(self, outcomes: list[Outcome], cause: Exception) -> None:
        super().__init__(str(cause))
        self.outcomes = outcomes
        self.cause = cause


@dataclass(frozen=True, slots=True)
class EngineContext:
    """The platform's services as an engine sees them: every call goes through the inference service,
    as the analysis' owner, so quotas, usage and permissions apply as for any other call."""

    inference: InferenceService
    principal: Principal
    taxonomy: Taxonomy
    embedding_model: str | None
    cache_dir: Path
    max_attempts: int = 3

    def validator(self) -> AnnotationValidator:
        return AnnotationValidator(self.taxonomy)

    async def embed(self, texts: list[str], model: str | None = None) -> tuple[np.ndarray, int]:
        """Normalised embeddings (as queries: classification compares like with like) and their tokens;
        by the platform's embeddings model unless another is named. Placeholders of personal data are left
        out: that a message named someone says nothing of its subject."""
        model = model or self.embedding_model
        if model is None:
            raise RuntimeError("no embeddings model is configured")
        answer = await self.inference.call(self.principal, Endpoint.EMBEDDINGS, {
            "model": model, "input": [without_placeholders(text) for text in texts], "input_type": "query"})
        vectors = np.asarray([row["embedding"] for row in sorted(answer["data"], key=lambda r: r["index"])],
                             dtype=np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors, int((answer.get("usage") or {}).get("total_tokens") or 0)


class Engine(Protocol):
    name: str
    model: str
    batch_size: int

    async def prepare(self) -> None:
        """What must be ready before the first message (anchors embedded, classifiers fitted)."""
        ...

    async def annotate(self, items: list[Item], examples: Sequence[Example] = ()) -> list[Outcome]: ...

    def estimate_tokens(self, text: str) -> int:
        """Tokens one message will cost at most (prompt and completion): the dry run's arithmetic."""
        ...
