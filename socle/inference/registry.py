"""The models clients can name, each with its type and its pool of backends."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from socle.errors import NotFound
from socle.inference.backends import build_backend
from socle.inference.backends.base import Backend
from socle.inference.routing import BackendPool
from socle.settings import Catalogue, ModelConfig


@dataclass(frozen=True, slots=True)
class ServedModel:
    config: ModelConfig
    pool: BackendPool

    @property
    def id(self) -> str:
        return self.config.id


class ModelRegistry:
    def __init__(self, catalogue: Catalogue) -> None:
        self.models = [
            ServedModel(model, BackendPool([build_backend(b, model.id) for b in model.backends], model.routing))
            for model in catalogue.models
        ]
        self._by_name = {name: served for served in self.models for name in (served.id, *served.config.aliases)}

    def get(self, name: str) -> ServedModel:
        served = self._by_name.get(name)
        if served is None:
            raise NotFound(f"The model '{name}' does not exist.", param="model", code="model_not_found")
        return served

    async def start(self) -> None:
        """Load in-process models and open clients; fails the start-up if one cannot load."""
        await asyncio.gather(*(backend.start() for _, backend in self._all()))

    async def close(self) -> None:
        await asyncio.gather(*(backend.close() for _, backend in self._all()), return_exceptions=True)

    async def health(self) -> dict[str, bool]:
        """Health by ``model[index]``: backend addresses are not disclosed to unauthenticated probes."""
        labels = [f"{served.id}[{i}]" for served in self.models for i in range(len(served.pool.backends))]
        results = await asyncio.gather(*(backend.health() for _, backend in self._all()), return_exceptions=True)
        return {label: result is True for label, result in zip(labels, results)}

    def _all(self) -> list[tuple[ServedModel, Backend]]:
        return [(served, backend) for served in self.models for backend in served.pool.backends]
