"""Where quota counters live: one atomic check-and-consume per admission, one batch of adjustments per settlement.

Two stores keep the same semantics: :class:`MemoryQuotaStore` (this process only: the embedded default) and
:class:`RedisQuotaStore` (shared by every worker and replica). An admission is a list of request windows and
counters; the store checks every one of them first and consumes them only if all fit, as one atomic step —
in Redis, within one Lua script that concurrent calls of the process share, each admission checked in turn
as if it ran alone — so a refused call consumes nothing and concurrent calls, from any process, are never
admitted past a limit. A settlement is applied at once in memory; in Redis it rides with the next script
(sent as soon as the one on its way is answered), and a clean close sends what is left.

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
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

log = logging.getLogger("socle.quotas")
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


class StoreObserver(Protocol):
    """Told how long each admission or settlement spent on the quota store, and whether it failed (metrics)."""

    def __call__(self, operation: str, seconds: float, *, failed: bool = False) -> None: ...


class QuotaStore(Protocol):
    async def admit(self, windows: Sequence[Window], counters: Sequence[Counter], now_ms: int) -> Refusal | None:
        """Consume every window and counter if all fit (``None``), else nothing (the first that did not)."""
        ...

    async def adjust(self, adjustments: Sequence[Adjustment]) -> None:
        """Apply a settlement (or a release): every adjustment, in one step, now or with the next step."""
        ...

    async def flush(self) -> None:
        """Wait until every settlement handed over so far is applied."""
        ...

    async def peek(self, windows: Sequence[Window], counters: Sequence[Counter], now_ms: int) -> list[int]:
        """What each window and counter has used now (windows first), consuming nothing: what remains to a
        person, shown in "Ma consommation"."""
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

    async def peek(self, windows: Sequence[Window], counters: Sequence[Counter], now_ms: int) -> list[int]:
        used = []
        for window in windows:
            known = self._windows.get(window.key)
            used.append(sum(1 for at in known[0] if at > now_ms - window.span_ms) if known else 0)
        return used + [self._value(counter.key, now_ms / 1000) for counter in counters]

    async def adjust(self, adjustments: Sequence[Adjustment]) -> None:
        now = time.time()
        for adjustment in adjustments:
            self._add(adjustment.key, adjustment.delta, adjustment.expire_at, now)

    async def flush(self) -> None:
        return None

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


# One script applies the settlements waiting, then the admissions waiting, in the order they came, each checked
# and consumed all or nothing as if it ran alone. KEYS: the counters to adjust, then each admission's windows
# (lists of admission times, newest first) and counters. ARGV[1]: one JSON array of integers (one argument to
# encode instead of a score per call: the client's encoding was most of its cost): the number of adjustments,
# delta and expire_at for each, then for each admission: now (ms), its number of windows and of counters, limit
# and span (ms) for each window, limit, need, charge and expire_at for each counter. Lua's numbers are doubles,
# as they were with ARGV's strings: integers are exact up to 2**53, and written back with %d (never 1e+17).
# Returns three integers per admission: -1, 0, 0 when admitted, else the index of the check that refused, what
# it had used, and a window's oldest entry (ms).
_BATCH = """
local argv = cjson.decode(ARGV[1])
local function int(x) return string.format('%d', x) end
local adjustments = argv[1]
local a = 2
for k = 1, adjustments do
  redis.call('INCRBY', KEYS[k], int(argv[a]))
  redis.call('EXPIREAT', KEYS[k], int(argv[a + 1]))
  a = a + 2
end
local k = adjustments
local answers = {}
while a <= #argv do
  local now, windows, counters = argv[a], argv[a + 1], argv[a + 2]
  local w = a + 3
  local c = w + 2 * windows
  local refusal = nil
  for i = 1, windows do
    local key, limit, span = KEYS[k + i], argv[w + 2 * i - 2], argv[w + 2 * i - 1]
    local oldest = redis.call('LINDEX', key, -1)
    while oldest and tonumber(oldest) <= now - span do
      redis.call('RPOP', key)
      oldest = redis.call('LINDEX', key, -1)
    end
    local used = redis.call('LLEN', key)
    if used >= limit then
      refusal = {i - 1, used, tonumber(oldest or now)}
      break
    end
  end
  if not refusal then
    for j = 1, counters do
      local at = c + 4 * (j - 1)
      local used = tonumber(redis.call('GET', KEYS[k + windows + j]) or '0')
      if used + argv[at + 1] > argv[at] then
        refusal = {windows + j - 1, used, 0}
        break
      end
    end
  end
  if refusal then
    answers[#answers + 1] = refusal[1]
    answers[#answers + 1] = refusal[2]
    answers[#answers + 1] = refusal[3]
  else
    for i = 1, windows do
      redis.call('LPUSH', KEYS[k + i], int(now))
      redis.call('PEXPIRE', KEYS[k + i], int(argv[w + 2 * i - 1]))
    end
    for j = 1, counters do
      local at = c + 4 * (j - 1)
      if argv[at + 2] ~= 0 then
        redis.call('INCRBY', KEYS[k + windows + j], int(argv[at + 2]))
        redis.call('EXPIREAT', KEYS[k + windows + j], int(argv[at + 3]))
      end
    end
    answers[#answers + 1] = -1
    answers[#answers + 1] = 0
    answers[#answers + 1] = 0
  end
  k = k + windows + counters
  a = c + 4 * counters
end
return answers
"""


class _Waiting:
    """An admission handed to the store and not answered yet: its script arguments, and who waits for them."""

    __slots__ = ("keys", "args", "counters", "deadline", "answer")

    def __init__(self, keys: list[str], args: list[int], counters: Sequence[Counter], deadline: float,
                 answer: asyncio.Future[Refusal | None]) -> None:
        self.keys = keys
        self.args = args
        self.counters = counters  # what it charges: given back if it is admitted after its caller left
        self.deadline = deadline
        self.answer = answer


class RedisQuotaStore:
    """Counters in Redis under ``{key_prefix}:quota:``, shared by every process.

    The work of concurrent calls is coalesced: the admissions and settlements handed to the store while a
    script is on its way are sent together in the next one, which applies the settlements, then checks and
    consumes each admission in turn as if it ran alone. A lone call still costs one script (a round trip) to
    be admitted; under load, many calls share each one. A settlement is not waited for: it rides with the
    next script, sent as soon as the one on its way is answered, and :meth:`close` sends what is left.

    An admission fails as :class:`QuotaStoreUnavailable` once ``timeout_s`` has passed since it was handed
    over (waiting for its script, connecting, the round trip), at once when Redis refuses the connection, and
    is never retried (a retry after a lost answer could consume twice). A settlement that fails is logged and
    lost, for the same reason."""

    def __init__(self, url: str, *, key_prefix: str, timeout_s: float,
                 observe: StoreObserver | None = None) -> None:
        # One deadline around each script (connecting, sending, reading) rather than the client's
        # per-socket-operation timeouts, each of which costs a timer per call.
        pool = BlockingConnectionPool.from_url(url, max_connections=_CONNECTIONS, timeout=None)
        self._redis = Redis.from_pool(pool)
        self._timeout_s = timeout_s
        self._observe = observe
        self._prefix = f"{key_prefix}:quota:"
        self._script = self._redis.register_script(_BATCH)
        self._admissions: list[_Waiting] = []
        self._settlements: list[tuple[list[Adjustment], float]] = []  # each with when it was handed over
        self._sender: asyncio.Task[None] | None = None

    async def admit(self, windows: Sequence[Window], counters: Sequence[Counter], now_ms: int) -> Refusal | None:
        prefix = self._prefix
        keys = [prefix + w.key for w in windows] + [prefix + c.key for c in counters]
        args: list[int] = [now_ms, len(windows), len(counters)]
        for window in windows:
            args += (window.limit, window.span_ms)
        for counter in counters:
            args += (min(counter.limit, _INT64), counter.need, counter.charge, counter.expire_at)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Refusal | None] = loop.create_future()
        self._admissions.append(_Waiting(keys, args, counters, loop.time() + self._timeout_s, answer))
        self._wake()
        try:
            return await answer
        except asyncio.CancelledError:  # the caller left just after its answer came: it will not settle
            if answer.done() and not answer.cancelled() and answer.exception() is None and answer.result() is None:
                self._release(counters)
            raise

    async def adjust(self, adjustments: Sequence[Adjustment]) -> None:
        """Hand a settlement over: applied with the next script, not waited for."""
        self._settlements.append((list(adjustments), time.perf_counter()))
        self._wake()

    async def flush(self) -> None:
        """Wait until everything handed over so far has been sent and answered."""
        while self._sender is not None:
            await asyncio.shield(self._sender)

    async def peek(self, windows: Sequence[Window], counters: Sequence[Counter], now_ms: int) -> list[int]:
        """One pipelined round trip of reads, beside the scripts (a window's list holds at most its limit)."""
        pipeline = self._redis.pipeline(transaction=False)
        for window in windows:
            pipeline.lrange(self._prefix + window.key, 0, window.limit - 1)
        for counter in counters:
            pipeline.get(self._prefix + counter.key)
        try:
            async with asyncio.timeout(self._timeout_s):
                answers = await pipeline.execute()
        except (RedisError, TimeoutError, OSError) as exc:
            raise QuotaStoreUnavailable(str(exc) or type(exc).__name__) from exc
        used = [sum(1 for at in times if int(at) > now_ms - window.span_ms)
                for window, times in zip(windows, answers, strict=False)]
        return used + [int(value or 0) for value in answers[len(windows):]]

    async def reset(self) -> None:
        await self.flush()
        keys = [key async for key in self._redis.scan_iter(match=f"{self._prefix}*", count=1000)]
        if keys:
            await self._redis.delete(*keys)

    async def close(self) -> None:
        await self.flush()
        await self._redis.aclose()

    def _release(self, counters: Sequence[Counter]) -> None:
        """Give back what an admission charged: its caller left without being told it was admitted."""
        releases = [Adjustment(c.key, -c.charge, c.expire_at) for c in counters if c.charge]
        if releases:
            self._settlements.append((releases, time.perf_counter()))
            self._wake()

    def _wake(self) -> None:
        # The sender starts at the next turn of the event loop: what the calls of this turn hand over goes in
        # its first script; what comes while a script is on its way goes in the next.
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        try:
            while self._admissions or self._settlements:
                admissions, self._admissions = self._admissions, []
                settlements, self._settlements = self._settlements, []
                await self._run(admissions, settlements)
        finally:
            self._sender = None
            for waiting in self._admissions:  # only when the loop itself is shutting down
                if not waiting.answer.done():
                    waiting.answer.set_exception(QuotaStoreUnavailable("the quota store was closed"))
            self._admissions = []

    async def _run(self, admissions: list[_Waiting], settlements: list[tuple[list[Adjustment], float]]) -> None:
        now = asyncio.get_running_loop().time()
        late = QuotaStoreUnavailable(f"no answer within {self._timeout_s} s")
        live: list[_Waiting] = []
        for waiting in admissions:
            if waiting.answer.done():  # its caller left before it was sent: nothing to do
                continue
            if waiting.deadline <= now:
                waiting.answer.set_exception(late)
                continue
            live.append(waiting)
        keys: list[str] = []
        args: list[int] = [0]
        for adjustments, _ in settlements:
            for adjustment in adjustments:
                keys.append(self._prefix + adjustment.key)
                args += (adjustment.delta, adjustment.expire_at)
        args[0] = len(keys)
        for waiting in live:
            keys += waiting.keys
            args += waiting.args
        if not keys:
            return
        deadline = min((w.deadline for w in live), default=now + self._timeout_s)
        try:
            async with asyncio.timeout_at(deadline):
                answer = await self._script(keys, [orjson.dumps(args)])
        except (RedisError, TimeoutError, OSError, asyncio.CancelledError) as exc:
            failure = QuotaStoreUnavailable(str(exc) or type(exc).__name__)
            for waiting in live:
                if not waiting.answer.done():
                    waiting.answer.set_exception(failure)
            if settlements:
                log.error("could not settle %d calls' quotas: %s", len(settlements), failure)
            self._observed(settlements, failed=True)
            if isinstance(exc, asyncio.CancelledError):  # the loop is shutting down
                raise
            return
        self._observed(settlements, failed=False)
        for i, waiting in enumerate(live):
            index = int(answer[3 * i])
            if waiting.answer.done():  # its caller left while the script was on its way: it will not settle
                if index < 0:
                    self._release(waiting.counters)
                continue
            waiting.answer.set_result(None if index < 0 else
                                      Refusal(index, int(answer[3 * i + 1]), int(answer[3 * i + 2])))

    def _observed(self, settlements: list[tuple[list[Adjustment], float]], *, failed: bool) -> None:
        if self._observe is not None:
            done = time.perf_counter()
            for _, handed in settlements:
                self._observe("settle", done - handed, failed=failed)


def quota_store(redis_url: str | None, *, key_prefix: str, timeout_s: float,
                observe: StoreObserver | None = None) -> QuotaStore:
    """Redis when configured (shared by every process and replica), else this process's memory.
    ``observe`` is told how long each settlement took to reach Redis, and whether it failed."""
    if not redis_url:
        return MemoryQuotaStore()
    return RedisQuotaStore(redis_url, key_prefix=key_prefix, timeout_s=timeout_s, observe=observe)
