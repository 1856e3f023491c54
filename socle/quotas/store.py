"""Where quota counters live: one atomic check-and-consume per admission, one batch of adjustments per settlement.

Two stores keep the same semantics: :class:`MemoryQuotaStore` (this process only: the embedded default) and
:class:`RedisQuotaStore` (shared by every worker and replica). An admission is a list of request windows and
counters; the store checks every one of them first and consumes them only if all fit, as one atomic step —
one Lua script, one round trip, in Redis — so a refused call consumes nothing and concurrent calls, from any
process, are never admitted past a limit.

- A request window counts the calls admitted over the last ``span_ms`` (a moving window, exact): it keeps the
  time of each admitted call, newest first, and drops the expired ones at each admission, so it never holds
  more than its limit, nor calls older than its span (in Redis: a list of integers, about 10 bytes a call).
  Times are the gateway's clock: replicas keep theirs in sync (NTP); a skew can only make a window count a
  call a little longer, never admit one too many.
- A counter refuses when ``used + need > limit`` and, when all fit, is increased by ``charge``: tokens per
  minute need 1 and charge nothing (they are charged after the call), budgets need and charge the call's
  worst case.

The Redis script names several keys in one call: it needs a single Redis (or a Sentinel-managed primary), not
a Redis Cluster, where they could live on different shards.
"""
from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

_INT64 = 2**63 - 1  # what a Redis counter holds: a larger limit is never reached
# Per process: a round trip holds a connection for ~0.1 ms, so a few serve thousands of calls a second; more
# would only open more at once when a burst comes (each must connect within the timeout).
_CONNECTIONS = 16


class QuotaStoreUnavailable(Exception):
    """The store did not answer (down, unreachable, or slower than its timeout)."""


@dataclass(frozen=True, slots=True)
class Window:
    """Calls admitted over the last ``span_ms``, at most ``limit`` of them."""

    key: str
    limit: int
    span_ms: int


@dataclass(frozen=True, slots=True)
class Counter:
    """A counter for a calendar period: refuses when ``used + need > limit``, else grows by ``charge``."""

    key: str
    limit: int
    need: int
    charge: int
    expire_at: int  # epoch seconds


@dataclass(frozen=True, slots=True)
class Refusal:
    """Which check refused (its index among the windows, then the counters), how much it had used, and for a
    window when its oldest entry was admitted (epoch ms: it leaves the window ``span_ms`` later)."""

    index: int
    used: int
    oldest_ms: int = 0


@dataclass(frozen=True, slots=True)
class Adjustment:
    """Add ``delta`` (possibly negative) to a counter, which expires at ``expire_at`` (epoch seconds)."""

    key: str
    delta: int
    expire_at: int


class QuotaStore(Protocol):
    async def admit(self, windows: Sequence[Window], counters: Sequence[Counter], now_ms: int) -> Refusal | None:
        """Consume every window and counter if all fit (``None``), else nothing (the first that did not)."""
        ...

    async def adjust(self, adjustments: Sequence[Adjustment]) -> None:
        """Apply a settlement (or a release): every adjustment, in one step."""
        ...

    async def reset(self) -> None:
        """Forget every counter of this store (tests)."""
        ...

    async def close(self) -> None: ...


class MemoryQuotaStore:
    """Counters in this process's memory: exact for one process (each step runs without awaiting)."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[collections.deque[int], int]] = {}  # key -> (entries in ms, span)
        self._counters: dict[str, tuple[int, int]] = {}  # key -> (value, expire_at)
        self._sweep_at = 0.0

    async def admit(self, windows: Sequence[Window], counters: Sequence[Counter], now_ms: int) -> Refusal | None:
        self._sweep(now_ms / 1000)
        entries = [self._trimmed(window, now_ms) for window in windows]
        for index, (window, admitted) in enumerate(zip(windows, entries, strict=True)):
            if len(admitted) >= window.limit:
                return Refusal(index, len(admitted), admitted[0] if admitted else now_ms)
        for index, counter in enumerate(counters, start=len(windows)):
            used = self._value(counter.key, now_ms / 1000)
            if used + counter.need > min(counter.limit, _INT64):
                return Refusal(index, used)
        for admitted in entries:
            admitted.append(now_ms)
        for counter in counters:
            if counter.charge:
                self._add(counter.key, counter.charge, counter.expire_at, now_ms / 1000)
        return None

    async def adjust(self, adjustments: Sequence[Adjustment]) -> None:
        now = time.time()
        for adjustment in adjustments:
            self._add(adjustment.key, adjustment.delta, adjustment.expire_at, now)

    async def reset(self) -> None:
        self._windows.clear()
        self._counters.clear()

    async def close(self) -> None:
        return None

    def _trimmed(self, window: Window, now_ms: int) -> collections.deque[int]:
        known = self._windows.get(window.key)
        if known is None:
            known = self._windows[window.key] = (collections.deque(), window.span_ms)
        admitted = known[0]
        while admitted and admitted[0] <= now_ms - window.span_ms:
            admitted.popleft()
        return admitted

    def _value(self, key: str, now: float) -> int:
        value, expire_at = self._counters.get(key, (0, 0))
        return value if expire_at > now else 0

    def _add(self, key: str, delta: int, expire_at: int, now: float) -> None:
        self._counters[key] = (self._value(key, now) + delta, expire_at)

    def _sweep(self, now: float) -> None:
        """Drop expired counters and empty windows, at most once a minute: memory stays bounded."""
        if now < self._sweep_at:
            return
        self._sweep_at = now + 60
        self._counters = {k: v for k, v in self._counters.items() if v[1] > now}
        self._windows = {k: (entries, span) for k, (entries, span) in self._windows.items()
                         if entries and entries[-1] > now * 1000 - span}


# KEYS: the windows (lists of admission times, newest first), then the counters. ARGV: now (ms), the number
# of windows, then limit and span (ms) for each window, then limit, need, charge, expire_at for each counter.
_ADMIT = """
local now = tonumber(ARGV[1])
local windows = tonumber(ARGV[2])
for i = 1, windows do
  local limit, span = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  local oldest = redis.call('LINDEX', KEYS[i], -1)
  while oldest and tonumber(oldest) <= now - span do
    redis.call('RPOP', KEYS[i])
    oldest = redis.call('LINDEX', KEYS[i], -1)
  end
  local used = redis.call('LLEN', KEYS[i])
  if used >= limit then
    return {i - 1, used, tonumber(oldest or now)}
  end
end
local base = 3 + 2 * windows
for i = windows + 1, #KEYS do
  local at = base + 4 * (i - windows - 1)
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used + tonumber(ARGV[at + 1]) > tonumber(ARGV[at]) then
    return {i - 1, used, 0}
  end
end
for i = 1, windows do
  redis.call('LPUSH', KEYS[i], ARGV[1])
  redis.call('PEXPIRE', KEYS[i], ARGV[2 + 2 * i])
end
for i = windows + 1, #KEYS do
  local at = base + 4 * (i - windows - 1)
  if ARGV[at + 2] ~= '0' then
    redis.call('INCRBY', KEYS[i], ARGV[at + 2])
    redis.call('EXPIREAT', KEYS[i], ARGV[at + 3])
  end
end
return {-1}
"""

# KEYS: the counters. ARGV: delta and expire_at for each.
_ADJUST = """
for i = 1, #KEYS do
  redis.call('INCRBY', KEYS[i], ARGV[2 * i - 1])
  redis.call('EXPIREAT', KEYS[i], ARGV[2 * i])
end
return #KEYS
"""


class RedisQuotaStore:
    """Counters in Redis under ``{key_prefix}:quota:``, shared by every process; each admission and each
    settlement is one script, one round trip, on one of at most 16 connections. A step that takes longer
    than ``timeout_s`` in all (waiting for a connection, connecting, the round trip) fails at once, without
    retries, as :class:`QuotaStoreUnavailable`: a hung Redis meets the same policy as a down one."""

    def __init__(self, url: str, *, key_prefix: str, timeout_s: float) -> None:
        # One deadline around the whole step (waiting for a connection, connecting, sending, reading) rather
        # than the client's per-socket-operation timeouts, each of which costs a task or a timer per call.
        pool = BlockingConnectionPool.from_url(url, max_connections=_CONNECTIONS, timeout=None)
        self._redis = Redis.from_pool(pool)
        self._timeout_s = timeout_s
        self._prefix = f"{key_prefix}:quota:"
        self._admit = self._redis.register_script(_ADMIT)
        self._adjust = self._redis.register_script(_ADJUST)

    async def admit(self, windows: Sequence[Window], counters: Sequence[Counter], now_ms: int) -> Refusal | None:
        keys = [self._prefix + w.key for w in windows] + [self._prefix + c.key for c in counters]
        args: list[int] = [now_ms, len(windows)]
        for window in windows:
            args += (window.limit, window.span_ms)
        for counter in counters:
            args += (min(counter.limit, _INT64), counter.need, counter.charge, counter.expire_at)
        try:
            async with asyncio.timeout(self._timeout_s):
                answer = await self._admit(keys, args)
        except (RedisError, TimeoutError, OSError) as exc:
            raise QuotaStoreUnavailable(str(exc) or type(exc).__name__) from exc
        if answer[0] < 0:
            return None
        return Refusal(int(answer[0]), int(answer[1]), int(answer[2]))

    async def adjust(self, adjustments: Sequence[Adjustment]) -> None:
        args: list[int] = []
        for adjustment in adjustments:
            args += (adjustment.delta, adjustment.expire_at)
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._adjust([self._prefix + a.key for a in adjustments], args)
        except (RedisError, TimeoutError, OSError) as exc:
            raise QuotaStoreUnavailable(str(exc) or type(exc).__name__) from exc

    async def reset(self) -> None:
        keys = [key async for key in self._redis.scan_iter(match=f"{self._prefix}*", count=1000)]
        if keys:
            await self._redis.delete(*keys)

    async def close(self) -> None:
        await self._redis.aclose()


def quota_store(redis_url: str | None, *, key_prefix: str, timeout_s: float) -> QuotaStore:
    """Redis when configured (shared by every process and replica), else this process's memory."""
    if not redis_url:
        return MemoryQuotaStore()
    return RedisQuotaStore(redis_url, key_prefix=key_prefix, timeout_s=timeout_s)
