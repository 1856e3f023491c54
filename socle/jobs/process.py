"""The ``socle worker`` process: runs job pools, apart from the API, until told to stop.

SIGTERM or SIGINT starts the stop: no job is taken any more, the running ones get the grace period
(``SOCLE_SHUTDOWN_GRACE_S``) to finish, and those still running then are handed back to the queue, so
another worker takes them at once instead of after their lease. A second signal cuts the grace short.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator, Sequence

import uvicorn
from starlette.types import ASGIApp

from socle.platform import Mode, Platform
from socle.settings import Settings

log = logging.getLogger("socle.jobs")


class UnknownPool(ValueError):
    """A pool named on the command line that no installed part of the platform has."""


def pools_to_run(platform: Platform, names: Sequence[str]) -> list[str]:
    """The pools named, or every pool with workers configured (a concurrency of 0 opts a pool out)."""
    known = [pool.name for pool in platform.pools]
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise UnknownPool(f"no job pool named {', '.join(unknown)}; the pools are {', '.join(known)}")
    return list(names) or [pool.name for pool in platform.pools if pool.concurrency > 0]


class _Probes(uvicorn.Server):
    """The worker's HTTP port: its own signal handlers decide when the worker stops, not uvicorn's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run_worker(settings: Settings, names: Sequence[str] = (),
                     probes: Callable[[Platform], ASGIApp] | None = None) -> None:
    """Run the pools until a signal; with ``probes`` and ``SOCLE_WORKER_PORT``, answer them on that port."""
    platform = Platform.build(settings, Mode.BATCH)
    server: _Probes | None = None
    listening: asyncio.Task[None] | None = None
    loop = asyncio.get_running_loop()
    stopping, hurry = asyncio.Event(), asyncio.Event()

    def signalled(signum: int) -> None:
        if stopping.is_set():
            hurry.set()
        else:
            log.warning("%s received: taking no more jobs", signal.Signals(signum).name)
            stopping.set()
            platform.stop_taking_jobs()

    try:
        pools = pools_to_run(platform, names)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, signalled, signum)
        await platform.start(pools=pools)
        if probes is not None and settings.worker_port:
            server = _Probes(uvicorn.Config(probes(platform), host=settings.host, port=settings.worker_port,
                                            log_config=None, lifespan="off", access_log=False,
                                            server_header=False))
            listening = asyncio.create_task(server.serve(), name="worker-probes")
        log.warning("worker running the job pools: %s", ", ".join(pools))
        await stopping.wait()
        grace_s = settings.shutdown_grace_s
        if platform.running_jobs:
            log.warning("waiting up to %g s for %d running job(s) to finish", grace_s, platform.running_jobs)
        drained = asyncio.create_task(platform.drain_jobs(grace_s))
        cut_short = asyncio.create_task(hurry.wait())
        await asyncio.wait({drained, cut_short}, return_when=asyncio.FIRST_COMPLETED)
        for task in (drained, cut_short):
            task.cancel()
        if platform.running_jobs:
            log.warning("handing %d unfinished job(s) back to the queue", platform.running_jobs)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if server is not None and listening is not None:
            server.should_exit = True
            await listening
        await platform.close()  # cancels what still runs: those jobs go back to the queue at once
        log.warning("worker stopped")
