"""The models clients can name, each with its type and its pool of backends."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from socle.errors import NotFound
from socle.inference.backends.base import Backend
from socle.inference.catalogue import build_backend
from socle.inference.manifest import ModelManifest
from socle.inference.routing import BackendPool
from socle.settings import Catalogue, ModelConfig


@dataclass(frozen=True, slots=True)
class ServedModel:
    config: ModelConfig
    pool: BackendPool

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def available(self) -> bool:
        """Some backend can take a call now: its circuit is closed and its last health check passed. Read
        from what the circuit breakers and the background checks already know: nothing is probed here."""
        now = time.monotonic()
        return any(state.healthy and state.open_until <= now for state in self.pool.states)


class ModelRegistry:
    def __init__(self, catalogue: Catalogue, *, health_interval_s: float = 10.0,
                 manifest: ModelManifest | None = None) -> None:
        self.models = [
            ServedModel(model, BackendPool([build_backend(b, model.id, model.backend_label(i))
                                            for i, b in enumerate(model.backends)], model.routing,
                                           failure_threshold=model.failure_threshold, cooldown_s=model.cooldown_s,
                                           model=model.id))
            for model in catalogue.models
        ]
        self._manifest = manifest
        self._by_name = {name: served for served in self.models for name in (served.id, *served.config.aliases)}
        self._health_interval_s = health_interval_s
        self._checker: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        """The backends are loaded or connected (:meth:`start`), and watched."""
        return self._checker is not None

    def get(self, name: str) -> ServedModel:
        served = self._by_name.get(name)
        if served is None:
            raise NotFound(f"The model '{name}' does not exist.", param="model", code="model_not_found")
        return served

    async def start(self) -> None:
        """Check the model files against the manifest, load in-process models and open clients (fails the
        start-up if a file changed or a model cannot load), then keep checking the backends' health in the
        background."""
        if self._manifest is not None:
            await asyncio.to_thread(self._manifest.admit, self.model_files())
        await asyncio.gather(*(backend.start() for backend in self._backends()))
        self._checker = asyncio.create_task(self._check_forever(), name="backend-health")

    async def close(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
        await asyncio.gather(*(backend.close() for backend in self._backends()), return_exceptions=True)

    async def _check_forever(self) -> None:
        while True:
            await asyncio.sleep(self._health_interval_s)
            await self.health()

    async def health(self) -> dict[str, bool]:
        """Health by ``model[index]``: backend addresses are not disclosed to unauthenticated probes."""
        states = [(served, state) for served in self.models for state in served.pool.states]
        results = await asyncio.gather(*(state.backend.health() for _, state in states), return_exceptions=True)
        report = {}
        for (served, state), result in zip(states, results):
            served.pool.checked(state, result is True)
            report[f"{served.id}[{state.index}]"] = result is True
        return report

    def model_files(self) -> list[Path]:
        """The files the in-process backends load."""
        return [path for backend in self._backends() for path in backend.model_files]

    def _backends(self) -> list[Backend]:
        return [backend for served in self.models for backend in served.pool.backends]
