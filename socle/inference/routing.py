"""Choosing a backend for a call: least outstanding requests, round robin, or weighted random."""
from __future__ import annotations

import contextlib
import itertools
import random
from collections.abc import Iterator

from socle.inference.backends.base import Backend
from socle.settings import RoutingStrategy


class BackendPool:
    """The backends of one model, with the count of calls each is serving right now."""

    def __init__(self, backends: list[Backend], strategy: RoutingStrategy) -> None:
        self.backends = backends
        self.strategy = strategy
        self.in_flight = [0] * len(backends)
        self._turn = itertools.count()
        self._weights = [backend.weight for backend in backends]

    def _pick(self) -> int:
        if len(self.backends) == 1:
            return 0
        if self.strategy == "round-robin":
            return next(self._turn) % len(self.backends)
        if self.strategy == "weighted":
            return random.choices(range(len(self.backends)), weights=self._weights)[0]
        least = min(self.in_flight)
        # Ties go round robin, so an idle pool still spreads its calls.
        candidates = [i for i, n in enumerate(self.in_flight) if n == least]
        return candidates[next(self._turn) % len(candidates)]

    @contextlib.contextmanager
    def lease(self) -> Iterator[Backend]:
        """A backend for one call, counted as busy until the block ends (a stream's whole life)."""
        index = self._pick()
        self.in_flight[index] += 1
        try:
            yield self.backends[index]
        finally:
            self.in_flight[index] -= 1
