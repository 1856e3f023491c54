"""Writes usage records in batches, off the request path.

The request path only appends to a list; a background task writes what has gathered every
``usage_flush_interval_s`` (or at once when ``usage_batch_size`` rows wait), in one INSERT. On a clean
shutdown everything still waiting is written. A failed write keeps its rows for the next attempt, up to
a bound beyond which the oldest are dropped, with an error in the log.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.db.models import UsageRecord
from socle.settings import ModelConfig
from socle.usage.events import CallRecord
from socle.usage.impact import ImpactEstimator

log = logging.getLogger("socle.usage")
_MAX_PENDING = 200_000


class UsageRecorder:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], models: dict[str, ModelConfig],
                 impacts: ImpactEstimator, *, interval_s: float = 1.0, batch_size: int = 500) -> None:
        self._sessions = sessions
        self._models = models
        self._impacts = impacts
        self._interval_s = interval_s
        self._batch_size = batch_size
        self._pending: list[CallRecord] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def record(self, call: CallRecord) -> None:
        self._pending.append(call)
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="usage-writer")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.flush()

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self._interval_s)
            except TimeoutError:
                pass
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, []
            try:
                async with self._sessions() as session, session.begin():
                    # A Core INSERT: the ORM's bulk path costs more on the event loop for the same rows.
                    await session.execute(UsageRecord.__table__.insert(), [self._row(call) for call in batch])
            except Exception:
                log.exception("could not write %d usage records; will retry", len(batch))
                self._pending[:0] = batch
                if len(self._pending) > _MAX_PENDING:
                    dropped = len(self._pending) - _MAX_PENDING
                    del self._pending[:dropped]
                    log.error("dropped the %d oldest usage records: the database is unreachable", dropped)

    def _row(self, call: CallRecord) -> dict[str, object]:
        model = self._models.get(call.model)
        energy, co2 = self._impacts.estimate(model.impact if model else None, call.completion_tokens,
                                             call.latency_ms)
        cost = model.pricing.cost(call.prompt_tokens, call.completion_tokens) if model else 0.0
        principal = call.principal
        return {
            "created_at": datetime.fromtimestamp(call.started_at, UTC), "user_id": principal.user_id,
            "key_id": principal.key_id, "role": principal.role, "group_ids": sorted(principal.group_ids),
            "model": call.model, "backend": call.backend, "endpoint": call.endpoint, "status": call.status,
            "prompt_tokens": call.prompt_tokens, "completion_tokens": call.completion_tokens,
            "latency_ms": round(call.latency_ms, 3), "ttft_ms": None if call.ttft_ms is None else round(call.ttft_ms, 3),
            "attempts": call.attempts, "cost": cost, "energy_kwh": energy, "co2_kg": co2,
            "request_id": call.request_id,
        }
