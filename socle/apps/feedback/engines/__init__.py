"""Engines that annotate messages, chosen per analysis: ``embedding`` (offline, the embedded default)
or ``llm`` (any chat model of the platform)."""
from __future__ import annotations

from pathlib import Path

from cachetools import LRUCache

from socle.apps.feedback.engines.base import Engine, EngineContext, Example, Interrupted, Item, Outcome
from socle.apps.feedback.engines.embedding import EmbeddingEngine
from socle.apps.feedback.engines.llm import LlmEngine
from socle.apps.feedback.taxonomy import Taxonomy
from socle.errors import InvalidRequest
from socle.identity.permissions import Principal
from socle.inference.service import InferenceService

ENGINES_KEPT = 8

ENGINES: dict[str, type[EmbeddingEngine] | type[LlmEngine]] = {"embedding": EmbeddingEngine, "llm": LlmEngine}


def engine_for(name: str, context: EngineContext, model: str) -> Engine:
    try:
        kind = ENGINES[name]
    except KeyError:
        raise InvalidRequest(f"Unknown engine {name!r}: choose one of {', '.join(ENGINES)}.",
                             param="engine") from None
    return kind(context, model)


class FittedEngines:
    """The engines analyses use, fitted once and kept, a few (each holds its classifiers and a cache of
    vectors): shared by the front that estimates an analysis and the job that runs it."""

    def __init__(self, inference: InferenceService, taxonomy: Taxonomy, *, embedding_model: str | None,
                 cache_dir: Path) -> None:
        self.inference = inference
        self.taxonomy = taxonomy
        self.embedding_model = embedding_model
        self._cache_dir = cache_dir
        self._kept: LRUCache[tuple[str, str, int], Engine] = LRUCache(ENGINES_KEPT)

    def context(self, principal: Principal) -> EngineContext:
        """What an engine acting for ``principal`` calls the platform with."""
        return EngineContext(self.inference, principal, self.taxonomy, self.embedding_model, self._cache_dir)

    def get(self, name: str, model: str, principal: Principal) -> Engine:
        key = (name, model, principal.user_id)
        if key not in self._kept:
            self._kept[key] = engine_for(name, self.context(principal), model)
        return self._kept[key]


__all__ = ["ENGINES", "Engine", "EngineContext", "Example", "FittedEngines", "Interrupted", "Item", "Outcome",
           "engine_for"]
