"""Engines that annotate messages, chosen per analysis: ``embedding`` (offline, the embedded default)
or ``llm`` (any chat model of the platform)."""
from __future__ import annotations

from socle.apps.feedback.engines.base import Engine, EngineContext, Example, Interrupted, Item, Outcome
from socle.apps.feedback.engines.embedding import EmbeddingEngine
from socle.apps.feedback.engines.llm import LlmEngine
from socle.errors import InvalidRequest

ENGINES: dict[str, type[EmbeddingEngine] | type[LlmEngine]] = {"embedding": EmbeddingEngine, "llm": LlmEngine}


def engine_for(name: str, context: EngineContext, model: str) -> Engine:
    try:
        kind = ENGINES[name]
    except KeyError:
        raise InvalidRequest(f"Unknown engine {name!r}: choose one of {', '.join(ENGINES)}.",
                             param="engine") from None
    return kind(context, model)


__all__ = ["ENGINES", "Engine", "EngineContext", "Example", "Interrupted", "Item", "Outcome", "engine_for"]
