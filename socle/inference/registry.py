"""The models clients can name, each with its type and its pool of backends."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from socle.errors import NotFound
from socle.inference.backends.base import Backend
from socle.inference.catalogue import build_backend
from socle.inference.manifest import ModelManifest
from socle.inference.routing import BackendPool, BackendState
from socle.settings import Catalogue, ModelConfig

if TYPE_CHECKING:
    from socle.inference.catalogue_store import CatalogueStore

log = logging.getLogger("socle.inference")


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
    """The models served, by every name they answer to.

    With a :class:`~socle.inference.catalogue_store.CatalogueStore`, the catalogue's file is imported into the
    database at :meth:`start` and the database's catalogue is served; then the catalogue's revision is read every
    ``refresh_s`` seconds and, when it moved, the catalogue is reloaded: models whose entry is unchanged are kept
    as they are (their circuits and counters too), a changed model gets a new pool in which unchanged backends are
    kept, and the backends no longer used are closed once their calls in flight are over. The swap is one
    assignment: :meth:`get` stays a dictionary lookup."""

    def __init__(self, catalogue: Catalogue, *, health_interval_s: float = 10.0,
                 manifest: ModelManifest | None = None, store: CatalogueStore | None = None,
                 refresh_s: float = 2.0, close_grace_s: float = 300.0) -> None:
        self._catalogue = catalogue
        self._store = store
        if store is not None:
            store.on_change(self.refresh)  # this process applies its own administrators' changes at once
        self._refresh_s = refresh_s
        self._close_grace_s = close_grace_s
        self._revision: int | None = None
        self.models: list[ServedModel] = [_served(model, _backends(model, {})[0]) for model in catalogue.models]
        self.configs: dict[str, ModelConfig] = {}  # by id: read by the usage recorder (prices, sizes), kept current
        self._manifest = manifest
        self._by_name: dict[str, ServedModel] = {}
        self._index()
        self._health_interval_s = health_interval_s
        self._checker: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._reload_lock = asyncio.Lock()

    @property
    def started(self) -> bool:
        """The backends are loaded or connected (:meth:`start`), and watched."""
        return self._checker is not None

    def get(self, name: str) -> ServedModel:
        served = self._by_name.get(name)
        if served is None:
            raise NotFound(f"The model '{name}' does not exist.", param="model", code="model_not_found")
        return served

    @property
    def revision(self) -> int | None:
        """The catalogue's revision served here (None: the file's, no store)."""
        return self._revision

    async def start(self) -> None:
        """Import the catalogue's file into the store and load the store's catalogue; check the model files
        against the manifest, load in-process models and open clients (fails the start-up if a file changed, a
        model cannot load or a stored key cannot be opened), then keep checking the backends' health and the
        catalogue's revision in the background."""
        if self._store is not None:
            await self._store.import_file(self._catalogue)
            snapshot = await self._store.snapshot()
            models, _, _ = self._plan(snapshot.models)  # nothing started yet: what is left over needs no closing
            self._serve(models, snapshot.revision)
        if self._manifest is not None:
            await asyncio.to_thread(self._manifest.admit, self.model_files())
        await asyncio.gather(*(backend.start() for backend in self._backends()))
        self._checker = asyncio.create_task(self._check_forever(), name="backend-health")
        if self._store is not None:
            self._watcher = asyncio.create_task(self._watch_forever(), name="catalogue-refresh")

    async def close(self) -> None:
        for task in (self._checker, self._watcher):
            if task is not None:
                task.cancel()
        for task in list(self._closing):
            task.cancel()
        await asyncio.gather(*(backend.close() for backend in self._backends()), return_exceptions=True)

    async def refresh(self) -> bool:
        """Reload the catalogue if its revision moved (called every ``refresh_s``, and at once by the process where
        an administrator changed it); True when something was applied."""
        if self._store is None or self._checker is None:
            return False
        async with self._reload_lock:
            if await self._store.revision() == self._revision:
                return False
            snapshot = await self._store.snapshot()
            models, built, leftover = self._plan(snapshot.models)
            files = [path for backend in built for path in backend.model_files]
            if self._manifest is not None and files:
                await asyncio.to_thread(self._manifest.admit, files)  # a changed file is refused here too
            # Started before the swap: a call never meets a backend that is not ready.
            results = await asyncio.gather(*(backend.start() for backend in built), return_exceptions=True)
            for backend, result in zip(built, results):
                if isinstance(result, BaseException):  # its calls fail, and its circuit takes it out
                    log.error("backend %s could not start: %s", backend.name, type(result).__name__)
            self._serve(models, snapshot.revision)
            if leftover:
                task = asyncio.create_task(self._retire(leftover), name="backends-retire")
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            log.info("catalogue revision %s applied: %d models", snapshot.revision, len(self.models),
                     extra={"event": "catalogue_applied", "revision": snapshot.revision})
            return True

    def running(self, config: ModelConfig, index: int) -> Backend | None:
        """The started backend serving entry ``index`` of ``config`` here, if that very entry is served (a test of
        the connection uses it rather than load an in-process model a second time)."""
        served = self._by_name.get(config.id)
        if served is None or self._checker is None or index >= len(served.config.backends):
            return None
        return served.pool.states[index].backend if _key(served.config, index) == _key(config, index) else None

    async def _watch_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.refresh()
            except Exception:  # the database is away, or a key cannot be opened: the catalogue in service stays
                log.exception("the catalogue could not be reloaded; the models in service are kept")

    def _plan(self, configs: Sequence[ModelConfig]) -> tuple[list[ServedModel], list[Backend], list[BackendState]]:
        """What serving ``configs`` takes: the models (unchanged ones kept as they are, unchanged backends kept in a
        changed model's new pool), the backends built for them (to be started), and the backends left over."""
        current = {served.id: served for served in self.models}
        spare = {_key(served.config, state.index): state for served in self.models for state in served.pool.states}
        models, built = [], []
        for config in configs:
            served = current.get(config.id)
            if served is not None and served.config == config:
                models.append(served)
                for state in served.pool.states:
                    spare.pop(_key(config, state.index), None)
                continue
            backends, new = _backends(config, spare)
            built.extend(new)
            models.append(_served(config, backends))
        return models, built, list(spare.values())

    def _serve(self, models: list[ServedModel], revision: int) -> None:
        """The swap: from here on, calls find the new catalogue (one assignment of each mapping)."""
        self.models = models
        self._revision = revision
        self._index()

    async def _retire(self, states: list[BackendState]) -> None:
        """Close backends taken out of the catalogue once their calls in flight (streams included) are over."""
        deadline = time.monotonic() + self._close_grace_s
        while any(state.in_flight for state in states) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.gather(*(state.backend.close() for state in states), return_exceptions=True)

    def _index(self) -> None:
        by_name: dict[str, ServedModel] = {}
        for served in self.models:
            for name in (served.id, *served.config.aliases):
                if name in by_name:
                    log.warning("the name %s is given to two models of the catalogue: the first keeps it", name)
                    continue
                by_name[name] = served
        self._by_name = by_name
        configs = {served.id: served.config for served in self.models}
        self.configs.clear()  # the same dictionary, updated: its readers hold it
        self.configs.update(configs)

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


def _served(config: ModelConfig, backends: list[Backend]) -> ServedModel:
    return ServedModel(config, BackendPool(backends, config.routing, failure_threshold=config.failure_threshold,
                                           cooldown_s=config.cooldown_s, model=config.id))


def _key(config: ModelConfig, index: int) -> tuple[str, str, str, str | None]:
    """What makes a backend the same one: its model, label and entry, its key included (the entry's JSON leaves
    the key out)."""
    entry = config.backends[index]
    key = getattr(entry, "api_key", None)
    return (config.id, config.backend_label(index), entry.model_dump_json(),
            key.get_secret_value() if key is not None else None)


def _backends(config: ModelConfig, spare: dict[tuple[str, str, str, str | None], BackendState]) -> tuple[
        list[Backend], list[Backend]]:
    """The backends of ``config``: those of ``spare`` with the same entry (taken from it), else new ones; and which
    are new."""
    backends, new = [], []
    for index, entry in enumerate(config.backends):
        label = config.backend_label(index)
        kept = spare.pop(_key(config, index), None)
        if kept is not None:
            backends.append(kept.backend)
        else:
            backend = build_backend(entry, config.id, label)
            backends.append(backend)
            new.append(backend)
    return backends, new
