"""Whether this replica can serve (``/ready``): its database answers and holds the schema this code was written
for, and its configuration is loaded. Backends are not part of it: a backend down is the routing's business
(``/v1/models`` says which models are available), and a replica taken out of service would not bring it back.

Probes come often and from every load balancer: the answer is kept a few seconds, and one look at a time
reaches the database.
"""
from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.ext.asyncio import AsyncEngine

from socle.db import migrate

log = logging.getLogger("socle")


class Readiness:
    def __init__(self, engine: AsyncEngine, *, ttl_s: float = 2.0, timeout_s: float = 2.0) -> None:
        self._engine = engine
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._ready = False
        self._until = 0.0
        self._lock = asyncio.Lock()

    async def __call__(self) -> bool:
        if time.monotonic() < self._until:
            return self._ready
        async with self._lock:
            if time.monotonic() < self._until:  # another probe looked while this one waited
                return self._ready
            ready = await self._look()
            if ready != self._ready:
                log.log(logging.INFO if ready else logging.WARNING, "this replica is %s",
                        "ready" if ready else "not ready")
            self._ready, self._until = ready, time.monotonic() + self._ttl_s
            return ready

    async def _look(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout_s), self._engine.connect() as connection:
                found = await migrate.applied(connection)
        except Exception as exc:  # noqa: BLE001 (unreachable, timed out, refused: all say "not ready")
            log.warning("not ready: the database cannot be read (%s)", type(exc).__name__)
            return False
        if not migrate.serves(found):
            log.warning("not ready: %s", migrate.describe(found))
            return False
        return True
