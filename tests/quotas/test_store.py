"""The quota stores' semantics, on each store (this process's memory, and Redis shared by two limiters standing
for two replicas): all-or-nothing admission under concurrency, reservations settled and given back, windows
that never hold more than their limit."""
from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from redis.asyncio import Redis

from socle.errors import BackendUnavailable, RateLimited
from socle.quotas.limiter import Admission, QuotaLimiter, Rule
from socle.quotas.store import Adjustment, Counter, MemoryQuotaStore, QuotaStore, RedisQuotaStore, Window
from tests.support.gateway import REDIS_URL, caller

WHO = caller(user_id=42)


class Rules:
    """The rules an administrator set, as the quota service hands them to the limiter."""

    def __init__(self, *rules: Rule) -> None:
        self._rules = list(rules)

    async def rules(self) -> list[Rule]:
        return self._rules


@asynccontextmanager
async def replicas(redis_url: str | None, *rules: Rule,
                   prefix: str | None = None) -> AsyncIterator[tuple[QuotaLimiter, QuotaLimiter]]:
    """Two limiters: two replicas sharing Redis, or (embedded) one process's limiter twice."""
    prefix = prefix or f"socle-test-store-{secrets.token_hex(4)}"
    # Bursts of 200 calls on a shared, busy machine: a deadline far above the default 0.5 s, which is tested
    # with Redis paused (tests/e2e/test_quotas.py) and unreachable (below).
    first = QuotaLimiter(Rules(*rules), redis_url=redis_url, key_prefix=prefix, redis_timeout_s=5)
    second = (QuotaLimiter(Rules(*rules), redis_url=redis_url, key_prefix=prefix, redis_timeout_s=5) if redis_url
              else first)
    try:
        yield first, second
    finally:
        await first.store.reset()
        for limiter in {first, second}:
            await limiter.close()


async def _burst(limiters: tuple[QuotaLimiter, QuotaLimiter], calls: int,
                 worst_case: tuple[int, float] = (100, 0.0)) -> list[Admission | BaseException]:
    """``calls`` admissions at once, alternating between the two limiters."""
    return await asyncio.gather(*(limiters[i % 2].admit(WHO, "m", lambda: worst_case) for i in range(calls)),
                                return_exceptions=True)


def _admitted(outcomes: list[Admission | BaseException]) -> list[Admission]:
    assert all(isinstance(o, (Admission, RateLimited)) for o in outcomes), outcomes
    return [o for o in outcomes if isinstance(o, Admission)]


async def test_concurrent_calls_on_two_replicas_admit_exactly_the_limit(redis_url: str | None) -> None:
    rule = Rule(id=1, scope="user", subject="42", model=None, requests_per_minute=50, tokens_per_minute=10**9)
    async with replicas(redis_url, rule) as limiters:
        assert len(_admitted(await _burst(limiters, 200))) == 50
        with pytest.raises(RateLimited) as refused:
            await limiters[1].admit(WHO, "m", lambda: (100, 0.0))
        assert refused.value.headers["x-ratelimit-remaining-requests"] == "0"
        assert 50 < refused.value.retry_after_s <= 60  # when the oldest of the 50 leaves the window


async def test_concurrent_calls_on_two_replicas_never_overspend_a_budget(redis_url: str | None) -> None:
    rule = Rule(id=1, scope="user", subject="42", model=None, budget_tokens=5_000, budget_cost=10.0)
    async with replicas(redis_url, rule) as limiters:
        admitted = _admitted(await _burst(limiters, 200, (100, 0.1)))  # the tokens budget holds 50, cost 100
        assert len(admitted) == 50
        for admission in admitted[:10]:  # ten calls really used 10 tokens: 900 come back
            await admission.settle(10, 0.01)
        for limiter in limiters:  # once each replica has sent its settlements (with its next script in Redis)
            await limiter.store.flush()
        assert len(_admitted(await _burst(limiters, 20, (100, 0.1)))) == 9


async def test_a_refused_call_consumes_nothing_of_the_other_rules(redis_url: str | None) -> None:
    every_model = Rule(id=1, scope="user", subject="42", model=None, requests_per_minute=5, budget_tokens=1_000)
    strict = Rule(id=2, scope="user", subject="42", model="m", requests_per_minute=2)
    async with replicas(redis_url, every_model, strict) as limiters:
        assert len(_admitted(await _burst(limiters, 10))) == 2  # m's rule refuses the 8 others...
        assert len(_admitted([await limiters[0].admit(WHO, "autre", lambda: (100, 0.0)) for _ in range(3)])) == 3
        with pytest.raises(RateLimited):  # ...which took neither a request nor tokens from the other rule
            await limiters[1].admit(WHO, "autre", lambda: (100, 0.0))
        over_budget = Rule(id=3, scope="user", subject="42", model=None, budget_tokens=1_000)
        async with replicas(redis_url, over_budget, Rule(id=4, scope="user", subject="42", model=None,
                                                         requests_per_minute=3)) as others:
            with pytest.raises(RateLimited):  # refused by the budget: no request counted in the window
                await others[0].admit(WHO, "m", lambda: (5_000, 0.0))
            assert len(_admitted(await _burst(others, 5))) == 3


async def test_a_failed_call_gives_its_reservation_back(redis_url: str | None) -> None:
    rule = Rule(id=1, scope="key", subject="7", model=None, budget_tokens=250, budget_cost=1.0,
                tokens_per_minute=1_000)
    async with replicas(redis_url, rule) as (limiter, _):
        first = await limiter.admit(WHO, "m", lambda: (100, 0.4))
        second = await limiter.admit(WHO, "m", lambda: (100, 0.4))
        with pytest.raises(RateLimited) as refused:
            await limiter.admit(WHO, "m", lambda: (100, 0.4))
        assert refused.value.code == "insufficient_quota"
        await first.settle(0, 0.0)  # the backend failed: nothing used
        await first.settle(500, 5.0)  # settled once only
        third = await limiter.admit(WHO, "m", lambda: (100, 0.4))
        for admission in (second, third):
            await admission.settle(120, 0.5)  # used more than reserved: 240 tokens, 1.0 spent
        with pytest.raises(RateLimited):
            await limiter.admit(WHO, "m", lambda: (11, 0.0))  # 240 + 11 > 250


async def test_settlements_ride_with_the_next_admission_and_a_close_sends_the_rest(redis_url: str | None) -> None:
    rule = Rule(id=1, scope="key", subject="7", model=None, budget_tokens=300)
    settled: list[tuple[str, bool]] = []

    def observe(operation: str, seconds: float, *, failed: bool = False) -> None:
        if operation == "settle":
            settled.append((operation, failed))

    prefix = f"socle-test-store-{secrets.token_hex(4)}"
    limiter = QuotaLimiter(Rules(rule), redis_url=redis_url, key_prefix=prefix, redis_timeout_s=5, observe=observe)
    calls = [await limiter.admit(WHO, "m", lambda: (100, 0.0)) for _ in range(3)]
    with pytest.raises(RateLimited):
        await limiter.admit(WHO, "m", lambda: (100, 0.0))
    await calls[0].settle(0, 0.0)  # handed over, not waited for...
    calls.append(await limiter.admit(WHO, "m", lambda: (100, 0.0)))  # ...and applied before the next admission
    for admission in calls[1:]:
        await admission.settle(10, 0.0)  # 270 tokens come back, with no admission to carry them
    if not redis_url:  # in memory, applied at once
        assert len(_admitted(await _burst((limiter, limiter), 3))) == 2  # 30 used: two more calls of 100 fit
        return
    await limiter.close()  # sends them
    assert settled == [("settle", False)] * 4  # each timed when it reached Redis
    async with replicas(redis_url, rule, prefix=prefix) as others:  # other replicas see them
        assert len(_admitted(await _burst(others, 3))) == 2


@pytest.fixture
async def store(redis_url: str | None) -> AsyncIterator[QuotaStore]:
    made: QuotaStore = (RedisQuotaStore(redis_url, key_prefix=f"socle-test-store-{secrets.token_hex(4)}",
                                        timeout_s=5) if redis_url else MemoryQuotaStore())
    yield made
    await made.reset()
    await made.close()


async def _window_size(store: QuotaStore, key: str, redis: Redis) -> int:
    """How many entries the window holds: what it costs in memory."""
    if isinstance(store, MemoryQuotaStore):
        return len(store._windows[key][0])
    return int(await redis.llen(f"{store._prefix}{key}"))  # type: ignore[attr-defined]


async def test_a_window_is_moving_and_never_holds_more_than_its_limit(store: QuotaStore) -> None:
    async with Redis.from_url(REDIS_URL) as redis:
        await _moving_window(store, redis)


async def _moving_window(store: QuotaStore, redis: Redis) -> None:
    window = Window("rpm:test", limit=3, span_ms=1_000)
    for at in (0, 100, 200):
        assert await store.admit([window], [], at) is None
    for at in (300, 999):  # full until the first entry leaves, 1 s after it came
        refusal = await store.admit([window], [], at)
        assert refusal is not None and (refusal.index, refusal.used, refusal.oldest_ms) == (0, 3, 0)
    assert await store.admit([window], [], 1_000) is None
    assert (await store.admit([window], [], 1_050)) is not None
    for at in range(1_100, 20_000, 41):  # a long steady flow: the window keeps at most its limit
        await store.admit([window], [], at)
        assert await _window_size(store, window.key, redis) <= 3
    assert await store.admit([window], [], 100_000) is None
    assert await _window_size(store, window.key, redis) == 1  # the expired entries are gone


async def test_counters_are_checked_together_and_consumed_only_if_all_fit(store: QuotaStore) -> None:
    async with Redis.from_url(REDIS_URL) as redis:
        await _all_or_nothing(store, redis)


async def _all_or_nothing(store: QuotaStore, redis: Redis) -> None:
    tokens = Counter("tpm:test", limit=100, need=1, charge=0, expire_at=2**40)
    budget = Counter("budget:test", limit=250, need=100, charge=100, expire_at=2**40)
    window = Window("rpm:test", limit=10, span_ms=60_000)
    assert await store.admit([window], [tokens, budget], 0) is None
    assert await store.admit([window], [tokens, budget], 1) is None
    refusal = await store.admit([window], [tokens, budget], 2)
    assert refusal is not None and (refusal.index, refusal.used) == (2, 200)
    assert await _window_size(store, window.key, redis) == 2  # the refused call left no entry


@pytest.mark.parametrize("fail_open", [False, True])
async def test_an_unreachable_store_follows_the_policy(fail_open: bool) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    rule = Rule(id=1, scope="user", subject="42", model=None, requests_per_minute=10)
    limiter = QuotaLimiter(Rules(rule), redis_url=url, key_prefix="socle-test-store-down", fail_open=fail_open)
    try:
        if fail_open:
            assert (await limiter.admit(WHO, "m", lambda: (100, 0.0))).limiter is None  # served, unlimited
        else:
            with pytest.raises(BackendUnavailable) as refused:
                await limiter.admit(WHO, "m", lambda: (100, 0.0))
            assert refused.value.code == "quota_store_unavailable"
        assert (await limiter.admit(caller(user_id=43), "m", lambda: (100, 0.0))).limiter is None  # not bound
    finally:
        await limiter.close()


async def test_a_caller_that_leaves_before_its_answer_keeps_nothing_reserved(store: QuotaStore) -> None:
    budget = Counter("budget:left", limit=100, need=100, charge=100, expire_at=2**40)
    give_back = [Adjustment("budget:left", -100, 2**40)]
    for turns in range(15):  # it leaves before its script is sent, while it is on its way, after its answer
        admission = asyncio.ensure_future(store.admit([], [budget], 0))
        for _ in range(turns):
            await asyncio.sleep(0)
        admission.cancel()
        if (await asyncio.gather(admission, return_exceptions=True))[0] is None:
            await store.adjust(give_back)  # it was admitted: its caller settles it
        assert await store.admit([], [budget], 0) is None  # the whole budget is there for the next call
        await store.adjust(give_back)
