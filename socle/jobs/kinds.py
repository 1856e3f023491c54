"""What a service hands the workers: its job kinds, each a name, a way to run one job, and what to do when a
job of that kind will never run again.

A service that enqueues work (ingestion, an app's analyses, the daily retention run) declares its kinds
and groups them in a :class:`Pool`; the platform gives every pool its own workers, so that a long job of
one pool never holds up another's.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Payload = dict[str, Any]


class JobKind(Protocol):
    """One kind of job. ``run`` must be idempotent: a job may run twice (a lease lost, a crash)."""

    @property
    def name(self) -> str: ...

    async def run(self, payload: Payload) -> None: ...

    async def give_up(self, payload: Payload, error: str) -> None:
        """The job failed for good (its attempts are spent, or the error is permanent): record it where
        the people waiting on it look."""
        ...


@dataclass(frozen=True, slots=True)
class Kind:
    """A job kind made of two functions, for services whose kinds are methods."""

    name: str
    run: Callable[[Payload], Awaitable[None]]
    give_up: Callable[[Payload, str], Awaitable[None]] = lambda payload, error: _nothing()


async def _nothing() -> None:
    return None


@dataclass(frozen=True, slots=True)
class Pool:
    """Job kinds run by the same workers; ``concurrency`` 0: this process runs none of them."""

    name: str
    kinds: Sequence[JobKind]
    concurrency: int
