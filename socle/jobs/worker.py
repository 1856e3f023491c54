"""In-process workers that run jobs from the durable queue: the embedded default.

Each worker claims a job, renews its lease while the handler runs, and records the outcome; a failure
is retried with exponential backoff until the job's attempts are spent. Stopping takes no new job, lets the
running ones finish within a grace period, then cancels the rest and hands their jobs back to the queue, so that
another worker takes them at once rather than after the lease (a worker killed outright still leaves its jobs
to come back when the lease runs out).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Sequence

from socle.jobs.kinds import JobKind
from socle.jobs.queue import JobQueue, LeasedJob
from socle.logs import request_id

log = logging.getLogger("socle.jobs")


class PermanentError(Exception):
    """A handler's failure that no retry can cure (a corrupt file...): the job fails at once."""


class JobWorkers:
    def __init__(self, queue: JobQueue, kinds: Sequence[JobKind], *, concurrency: int = 2,
                 lease_s: float = 60.0, poll_s: float = 0.5, backoff_s: float = 2.0) -> None:
        self._queue = queue
        self._kinds = {kind.name: kind for kind in kinds}
        self._concurrency = concurrency
        self._lease_s = lease_s
        self._poll_s = poll_s
        self._backoff_s = backoff_s
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self.running: set[int] = set()  # ids of the jobs being run now
        queue.listen(self._kinds, self._wake.set)  # a job of ours enqueued in this process: look now

    @property
    def kinds(self) -> list[str]:
        return list(self._kinds)

    def start(self) -> None:
        prefix = f"{socket.gethostname()}:{os.getpid()}"
        self._tasks = [asyncio.create_task(self._loop(f"{prefix}:{i}"), name=f"job-worker-{i}")
                       for i in range(self._concurrency)]

    def stop_taking(self) -> None:
        """Claim no new job; the running ones go on."""
        self._stopping = True
        self._wake.set()

    async def drain(self, grace_s: float) -> None:
        """Stop taking jobs and wait, ``grace_s`` at most, for the running ones to finish."""
        self.stop_taking()
        if self._tasks and grace_s > 0:
            await asyncio.wait(self._tasks, timeout=grace_s)

    async def stop(self, grace_s: float = 0.0) -> None:
        """:meth:`drain`, then cancel the jobs still running: they are handed back to the queue."""
        await self.drain(grace_s)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _loop(self, worker: str) -> None:
        kinds = list(self._kinds)
        while not self._stopping:
            try:
                job = await self._queue.claim(worker, kinds, lease_s=self._lease_s)
            except Exception:
                log.exception("could not claim a job")
                job = None
            if job is None:
                if self._stopping:
                    return
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_s)
                continue
            if self._stopping:  # claimed as the stop began: not ours to run any more
                await self._release(job, worker)
                return
            await self._run(job, worker)

    async def _run(self, job: LeasedJob, worker: str) -> None:
        # The job's logs, and the usage rows of the calls it makes, name the request that enqueued it.
        token = request_id.set(job.request_id)
        renewal = asyncio.create_task(self._keep_leased(job, worker))
        self.running.add(job.id)
        try:
            await self._kinds[job.kind].run(job.payload)
        except asyncio.CancelledError:
            await asyncio.shield(self._release(job, worker))  # stopping: another worker takes it at once
            raise
        except PermanentError as exc:
            await self._queue.fail(job, worker, str(exc), retry_in_s=0, permanent=True)
            await self._give_up(job, str(exc))
        except Exception as exc:
            log.warning("job %d (%s) failed, attempt %d/%d: %s", job.id, job.kind, job.attempts, job.max_attempts,
                        exc)
            error = f"{type(exc).__name__}: {exc}"
            await self._queue.fail(job, worker, error, retry_in_s=self._backoff_s * 2 ** (job.attempts - 1))
            if job.attempts >= job.max_attempts:
                await self._give_up(job, error)
        else:
            await self._queue.complete(job, worker)
        finally:
            self.running.discard(job.id)
            renewal.cancel()
            request_id.reset(token)

    async def _release(self, job: LeasedJob, worker: str) -> None:
        try:
            await self._queue.release(job, worker)
            log.warning("job %d (%s) interrupted by the worker's stop: handed back to the queue", job.id, job.kind)
        except Exception:
            log.exception("job %d (%s): could not hand it back; it comes back when its lease runs out",
                          job.id, job.kind)

    async def _give_up(self, job: LeasedJob, error: str) -> None:
        """Tell the job's owner that it will not run again, so that what waits on it can say so."""
        try:
            await self._kinds[job.kind].give_up(job.payload, error)
        except Exception:
            log.exception("job %d (%s): could not record its failure", job.id, job.kind)

    async def _keep_leased(self, job: LeasedJob, worker: str) -> None:
        while True:
            await asyncio.sleep(self._lease_s / 3)
            if not await self._queue.renew(job, worker, lease_s=self._lease_s):
                log.warning("job %d: lease lost", job.id)
                return
