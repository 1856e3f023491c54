"""Watches the queue for jobs that should be running and are not.

A job nobody takes (no worker of its kind runs anywhere, or every one is stuck) is otherwise silent: the
document it would ingest just stays ``queued``. The watchdog looks once per interval, with one aggregate
query (a second one lists the stalled jobs, only when there are some): it logs each job due for longer
than the bound once, at WARNING, and keeps the backlog per kind for ``/metrics``.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from socle.db.models import utcnow
from socle.jobs.queue import Backlog, JobQueue

log = logging.getLogger("socle.jobs")


class JobWatchdog:
    def __init__(self, queue: JobQueue, *, stall_s: float, interval_s: float | None = None) -> None:
        self._queue = queue
        self.stall_s = stall_s
        self._interval_s = interval_s if interval_s is not None else min(stall_s / 4, 30.0)
        self._backlog: dict[str, Backlog] = {}
        self._kinds: set[str] = set()  # every kind seen waiting: its gauges drop to zero, not out of sight
        self._reported: set[int] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="job-watchdog")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def backlog(self) -> list[tuple[str, int, int, float]]:
        """Per kind: jobs waiting, of which stalled, and the oldest one's wait in seconds (as of now)."""
        rows = []
        for kind in sorted(self._kinds):
            seen = self._backlog.get(kind)
            if seen is None:
                rows.append((kind, 0, 0, 0.0))
            else:
                rows.append((kind, seen.waiting, seen.stalled, max(0.0, _waited(seen.oldest_since))))
        return rows

    async def check(self) -> None:
        """One look at the queue: refresh the backlog, and log the jobs newly found stalled."""
        backlog = await self._queue.backlog(stalled_after_s=self.stall_s)
        self._backlog = {row.kind: row for row in backlog}
        self._kinds.update(self._backlog)
        if not any(row.stalled for row in backlog):
            self._reported.clear()
            return
        stalled = await self._queue.stalled(stalled_after_s=self.stall_s)
        for job_id, kind, since in stalled:
            if job_id not in self._reported:
                log.warning("job %d (%s) has waited %.0f s to start: no worker of this kind is running, or "
                            "every one is busy or stuck", job_id, kind, _waited(since))
        self._reported = {job_id for job_id, _, _ in stalled}

    async def _loop(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:
                log.exception("could not watch the job queue")
            await asyncio.sleep(self._interval_s)


def _waited(since: datetime) -> float:
    return (utcnow() - since).total_seconds()
