"""Failed password sign-ins, counted per account and per client address, to slow down password guessing.

Counters live in a `limits` storage like the quotas': process memory when embedded, Redis when
``SOCLE_REDIS_URL`` is set, so that every worker and replica counts the same failures. Each attempt takes
its place in both counters atomically *before* the password is checked, so that guesses sent in parallel
cannot all slip under the limit; a success gives its places back (a successful sign-in is not counted) and
clears its account's count — not its address's, or signing in to one's own account would reset the guessing
of others'. A counter's window starts at its first failure.

The per-account limit lets anyone hold an account's password sign-ins for one window by failing on purpose;
the account can still sign in through ProConnect. When the storage is unreachable, or does not answer within
its timeout (``SOCLE_REDIS_TIMEOUT_S``), password sign-ins are refused at once (fail closed) rather than left
unlimited.
"""
from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from limits.aio.storage import Storage
from limits.errors import StorageError

from socle.errors import BackendUnavailable, RateLimited
from socle.identity.names import canonical_email

log = logging.getLogger("socle.identity")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Attempt:
    """A password sign-in let through: its places in the counters, given back if it succeeds."""

    account_key: str
    keys: tuple[str, ...]


class SignInThrottle:
    def __init__(self, storage: Storage, *, per_account: int, per_address: int, window_minutes: int,
                 namespace: str = "sign-in") -> None:
        """``namespace``: what is counted (failed sign-ins; requests for a forgotten password's link)."""
        self._storage = storage
        self._namespace = namespace
        self._limits = {"account": per_account, "address": per_address}
        self._window_s = window_minutes * 60

    async def attempt(self, email: str, address: str) -> Attempt:
        """Take the attempt's places, or :class:`RateLimited` (nothing taken) when either count is full."""
        keys = {kind: _key(self._namespace, kind, value)
                for kind, value in (("account", canonical_email(email)), ("address", address))}
        taken: list[str] = []
        try:
            for kind, key in keys.items():
                count = await _guarded(self._storage.incr(key, self._window_s, 1))
                taken.append(key)
                if count > self._limits[kind]:
                    retry = max(await _guarded(self._storage.get_expiry(key)) - time.time(), 1.0)
                    raise RateLimited(f"Too many failed sign-ins for this {kind}.", retry_after_s=retry,
                                      code=f"sign_in_throttled_{kind}")
        except BaseException:
            await self._give_back(taken)
            raise
        return Attempt(keys["account"], tuple(taken))

    async def succeeded(self, attempt: Attempt) -> None:
        """Not counted, and the account's failures forgotten (a storage failure here stops no one)."""
        await self._give_back(list(attempt.keys))
        try:
            await self._storage.clear(attempt.account_key)
        except StorageError:
            log.exception("could not clear an account's failed sign-ins")

    async def _give_back(self, keys: list[str]) -> None:
        for key in keys:
            try:
                await self._storage.incr(key, self._window_s, -1)
            except StorageError:
                log.exception("could not give back a sign-in attempt's place in %s", key)


def _key(namespace: str, kind: str, value: str) -> str:
    """Counters are named by a hash: the store never holds an e-mail address."""
    return f"{namespace}:{kind}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"


async def _guarded(call: Awaitable[T]) -> T:
    try:
        return await call
    except StorageError as exc:
        log.error("the sign-in counters are unreachable, password sign-ins are refused: %s", exc)
        raise BackendUnavailable("Sign-in attempts cannot be counted right now.",
                                 code="sign_in_store_unavailable") from exc
