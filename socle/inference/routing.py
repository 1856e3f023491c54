"""Choosing backends for a call, and keeping failing ones out of the way.

Each backend of a model has a small circuit breaker: after ``failure_threshold`` consecutive failures
(connection refused, 5xx, timeout) it is taken out for ``cooldown_s``; then one trial call is let
through, and a success closes the circuit again. Active health checks run beside it: a backend that
answers its check is brought back at once, one that does not is taken out before a client pays for it.

A call gets an ordered list of backends to try: the strategy's choice first, then the others, so a
retry never lands on the backend that just failed.

Each failure leaves one log line (model, backend label, error kind; never the request or a key), and so does
each change of a circuit (opened, closed); the request id comes with the record.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

from socle.inference.backends.base import Backend
from socle.settings import RoutingStrategy

log = logging.getLogger("socle.backends")


@dataclass(eq=False)
class BackendState:
    """A backend and what the pool knows of it."""

    backend: Backend
    index: int
    in_flight: int = 0
    failures: int = 0
    open_until: float = 0.0  # circuit open (backend out) until this monotonic time
    trial: bool = False  # half-open: one call is testing the backend
    healthy: bool = True  # last active check

    def available(self, now: float) -> bool:
        return self.open_until <= now and not self.trial


class BackendPool:
    """The backends of one model, the routing strategy, and the circuit breakers."""

    def __init__(self, backends: list[Backend], strategy: RoutingStrategy, *, failure_threshold: int = 3,
                 cooldown_s: float = 30.0, model: str = "") -> None:
        self.states = [BackendState(backend, i) for i, backend in enumerate(backends)]
        self.strategy = strategy
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.model = model
        self._turn = itertools.count()

    @property
    def backends(self) -> list[Backend]:
        return [state.backend for state in self.states]

    def plan(self) -> list[BackendState]:
        """Backends to try, in order. Out-of-service ones only when nothing else is left."""
        now = time.monotonic()
        ready = [s for s in self.states if s.available(now)]
        if not ready:
            # Every circuit is open: try the one that has waited longest (a half-open trial).
            waiting = [s for s in self.states if not s.trial] or self.states
            return [min(waiting, key=lambda s: s.open_until)]
        first = self._choose(ready)
        return [first, *(s for s in ready if s is not first)]

    def _choose(self, ready: list[BackendState]) -> BackendState:
        if len(ready) == 1:
            return ready[0]
        if self.strategy == "round-robin":
            return ready[next(self._turn) % len(ready)]
        if self.strategy == "weighted":
            return random.choices(ready, weights=[s.backend.weight for s in ready])[0]
        least = min(s.in_flight for s in ready)
        # Ties go round robin, so an idle pool still spreads its calls.
        candidates = [s for s in ready if s.in_flight == least]
        return candidates[next(self._turn) % len(candidates)]

    @contextlib.contextmanager
    def lease(self, state: BackendState) -> Iterator[Backend]:
        """Count a call as in flight on ``state`` for the block's duration (a stream's whole life)."""
        if state.open_until > time.monotonic() or state.failures >= self.failure_threshold:
            state.trial = True
        state.in_flight += 1
        try:
            yield state.backend
        finally:
            state.in_flight -= 1
            state.trial = False  # a trial that ended neither in success nor failure (client gone) is over

    def succeeded(self, state: BackendState) -> None:
        if state.open_until:
            log.warning("circuit closed: backend %s of model %s is back in service", state.backend.name,
                        self.model, extra={"event": "circuit_closed", "model": self.model,
                                           "backend": state.backend.name})
        state.failures = 0
        state.open_until = 0.0
        state.trial = False

    def failed(self, state: BackendState, error: BaseException | None = None) -> None:
        state.failures += 1
        state.trial = False
        kind = _kind(error)
        log.warning("backend %s of model %s failed: %s", state.backend.name, self.model, kind,
                    extra={"event": "backend_failed", "model": self.model, "backend": state.backend.name,
                           "error": kind, "failures": state.failures})
        if state.failures >= self.failure_threshold:
            self._open(state, f"{state.failures} failures in a row")

    def _open(self, state: BackendState, why: str) -> None:
        if not state.open_until:
            log.warning("circuit opened: backend %s of model %s taken out of service for %.0f s (%s)",
                        state.backend.name, self.model, self.cooldown_s, why,
                        extra={"event": "circuit_opened", "model": self.model, "backend": state.backend.name})
        state.open_until = time.monotonic() + self.cooldown_s

    def checked(self, state: BackendState, healthy: bool) -> None:
        """The result of an active health check."""
        state.healthy = healthy
        if healthy and state.open_until:
            self.succeeded(state)
        elif not healthy:
            state.failures = max(state.failures, self.failure_threshold)
            self._open(state, "health check failed")


def _kind(error: BaseException | None) -> str:
    """What failed, without the message (which may quote the backend's answer): the error's kind and code."""
    if error is None:
        return "unknown"
    kind = getattr(error, "kind", None) or type(error).__name__
    code = getattr(error, "code", None)
    return f"{kind} ({code})" if code and code != kind else str(kind)
