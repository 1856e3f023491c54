"""Admitting a call against the quotas that bind its caller, and settling it afterwards.

Counters live in a `limits` storage: process memory when embedded, Redis when ``SOCLE_REDIS_URL`` is
set, so that every worker and replica shares them exactly.

- Requests per minute and per day: `limits`' moving window, checked for every rule first and only
  then consumed, so a refused call consumes nothing (under a race between two calls, one may be
  refused after consuming a unit of another rule; it is never over-admitted).
- Tokens per minute: a per-minute counter, checked before the call and charged with the tokens the
  backend reports after it (as OpenAI does: one call may overshoot).
- Budgets (tokens or cost per day or month): the call reserves its worst case (prompt estimate plus
  max_tokens for every answer it may generate) with an atomic increment before the backend is called, and is settled to what it really
  used after; a reservation that does not fit is taken back at once and the call refused. Concurrent
  calls therefore cannot overspend by more than one call's estimate error.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from socle.errors import BackendUnavailable, RateLimited
from socle.identity.permissions import Principal

log = logging.getLogger("socle.quotas")
_MICRO = 1_000_000  # costs are counted in millionths of the currency unit


@dataclass(frozen=True, slots=True)
class Rule:
    """A quota rule as the limiter needs it (read from the database by the quota service)."""

    id: int
    scope: str
    subject: str
    model: str | None
    requests_per_minute: int | None = None
    requests_per_day: int | None = None
    tokens_per_minute: int | None = None
    budget_tokens: int | None = None
    budget_cost: float | None = None
    budget_period: str = "month"

    def binds(self, principal: Principal, model: str) -> bool:
        if self.model is not None and self.model != model:
            return False
        if self.scope == "global":
            return True
        if self.scope == "key":
            return self.subject == str(principal.key_id)
        if self.scope == "user":
            return self.subject == str(principal.user_id)
        if self.scope == "group":
            return self.subject.isdigit() and int(self.subject) in principal.group_ids
        return self.scope == "role" and self.subject == principal.role

    def counter(self, principal: Principal) -> str:
        """Whose counter: the rule's own, or for a role, each of its users' own."""
        return f"q{self.id}:u{principal.user_id}" if self.scope == "role" else f"q{self.id}"


class RuleSource(Protocol):
    async def rules(self) -> list[Rule]: ...


class StoreObserver(Protocol):
    """Told how long each admission or settlement spent on the quota store, and whether it failed (metrics)."""

    def __call__(self, operation: str, seconds: float, *, failed: bool = False) -> None: ...


@dataclass(slots=True)
class Admission:
    """A call let through: what it reserved, to be settled when its real use is known."""

    limiter: QuotaLimiter | None
    budgets: list[tuple[str, int, int]] = field(default_factory=list)  # (key, reserved, expiry)
    token_counters: list[tuple[str, int]] = field(default_factory=list)  # (key, expiry)
    cost_budgets: list[tuple[str, int, int]] = field(default_factory=list)
    settled: bool = False

    async def settle(self, tokens: int, cost: float) -> None:
        """Charge the real use (tokens, cost) in place of the reservation; idempotent."""
        if self.settled or self.limiter is None:
            return
        self.settled = True
        await self.limiter._settle(self, tokens, round(cost * _MICRO))


UNLIMITED = Admission(limiter=None)


class QuotaLimiter:
    def __init__(self, rules: RuleSource, *, redis_url: str | None = None, key_prefix: str = "socle",
                 fail_open: bool = False, redis_timeout_s: float = 0.5, observe: StoreObserver | None = None) -> None:
        self._rules = rules
        self._observe = observe
        self.storage: Storage = storage_for(redis_url, key_prefix=key_prefix, timeout_s=redis_timeout_s)
        self._windows = MovingWindowRateLimiter(self.storage)
        self.fail_open = fail_open

    async def admit(self, principal: Principal, model: str,
                    worst_case: Callable[[], tuple[int, float]]) -> Admission:
        """Let a call through, reserving its worst case (tokens, cost), or raise RateLimited.
        ``worst_case`` is only computed when a rule binds the call."""
        rules = [rule for rule in await self._rules.rules() if rule.binds(principal, model)]
        if not rules:
            return UNLIMITED
        tokens, cost = worst_case()
        started = time.perf_counter()
        try:
            admission = await self._admit(rules, principal, tokens, round(cost * _MICRO))
        except StorageError as exc:
            if self._observe is not None:
                self._observe("admit", time.perf_counter() - started, failed=True)
            if self.fail_open:
                log.warning("quota store unreachable, serving without limits: %s", exc)
                return UNLIMITED
            raise BackendUnavailable("Quotas cannot be checked right now (the quota store is unreachable).",
                                     code="quota_store_unavailable") from exc
        except RateLimited:
            if self._observe is not None:
                self._observe("admit", time.perf_counter() - started)
            raise
        if self._observe is not None:
            self._observe("admit", time.perf_counter() - started)
        return admission

    async def _admit(self, rules: list[Rule], principal: Principal, tokens: int, micro_cost: int) -> Admission:
        now = time.time()
        windows = [(item, rule.counter(principal)) for rule in rules for item in _request_items(rule)]
        for item, counter in windows:  # check everything before consuming anything
            if not await self._windows.test(item, counter):
                raise await self._refusal(item, counter, "requests")
        admission = Admission(limiter=self)
        for rule in rules:
            if rule.tokens_per_minute is not None:
                key, expiry = _period_key(f"tpm:{rule.counter(principal)}", "minute", now)
                used = int(await self.storage.get(key) or 0)
                if used >= rule.tokens_per_minute:
                    raise _refused(f"Tokens per minute exhausted ({used}/{rule.tokens_per_minute}).",
                                   _until_next("minute", now), "tokens", rule.tokens_per_minute, 0)
                admission.token_counters.append((key, expiry))
        try:
            for rule in rules:
                await self._reserve(admission, rule, principal, tokens, micro_cost, now)
            for item, counter in windows:
                if not await self._windows.hit(item, counter):  # lost a race since the test above
                    raise await self._refusal(item, counter, "requests")
        except BaseException:
            await self._release(admission)
            raise
        return admission

    async def _reserve(self, admission: Admission, rule: Rule, principal: Principal, tokens: int, micro_cost: int,
                       now: float) -> None:
        for budget, amount, target, unit in ((rule.budget_tokens, tokens, admission.budgets, "tokens"),
                                             (rule.budget_cost, micro_cost, admission.cost_budgets, "cost")):
            if budget is None:
                continue
            limit = budget if unit == "tokens" else round(budget * _MICRO)
            key, expiry = _period_key(f"budget-{unit}:{rule.counter(principal)}", rule.budget_period, now)
            total = await self.storage.incr(key, expiry, amount)
            target.append((key, amount, expiry))
            if total > limit:
                raise RateLimited(f"The {rule.budget_period}ly {unit} budget is exhausted for this call "
                                  f"(quota {rule.id}).", retry_after_s=_until_next(rule.budget_period, now),
                                  code="insufficient_quota", error_type="insufficient_quota")

    async def _release(self, admission: Admission) -> None:
        for key, reserved, expiry in (*admission.budgets, *admission.cost_budgets):
            await self.storage.incr(key, expiry, -reserved)

    async def _settle(self, admission: Admission, tokens: int, micro_cost: int) -> None:
        started = time.perf_counter()
        failed = False
        try:
            for key, reserved, expiry in admission.budgets:
                await self.storage.incr(key, expiry, tokens - reserved)
            for key, reserved, expiry in admission.cost_budgets:
                await self.storage.incr(key, expiry, micro_cost - reserved)
            for key, expiry in admission.token_counters:
                if tokens:
                    await self.storage.incr(key, expiry, tokens)
        except StorageError:
            failed = True
            log.exception("could not settle a call's quotas (tokens=%d)", tokens)
        if self._observe is not None:
            self._observe("settle", time.perf_counter() - started, failed=failed)

    async def _refusal(self, item: RateLimitItem, counter: str, unit: str) -> RateLimited:
        stats = await self._windows.get_window_stats(item, counter)
        retry = max(stats.reset_time - time.time(), 0.0)
        return _refused(f"Rate limit reached: {item.amount} requests per {item.GRANULARITY.name}.", retry, unit,
                        item.amount, stats.remaining)


def _refused(message: str, retry_after_s: float, unit: str, limit: int, remaining: int) -> RateLimited:
    reset = f"{math.ceil(retry_after_s)}s"
    return RateLimited(message, retry_after_s=retry_after_s, headers={
        f"x-ratelimit-limit-{unit}": str(limit), f"x-ratelimit-remaining-{unit}": str(remaining),
        f"x-ratelimit-reset-{unit}": reset})


def _request_items(rule: Rule) -> list[RateLimitItem]:
    items: list[RateLimitItem] = []
    if rule.requests_per_minute is not None:
        items.append(RateLimitItemPerMinute(rule.requests_per_minute))
    if rule.requests_per_day is not None:
        items.append(RateLimitItemPerDay(rule.requests_per_day))
    return items


def _period_start(period: str, now: float) -> datetime:
    moment = datetime.fromtimestamp(now, UTC)
    if period == "minute":
        return moment.replace(second=0, microsecond=0)
    if period == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _period_end(period: str, now: float) -> float:
    start = _period_start(period, now)
    if period == "minute":
        return start.timestamp() + 60
    if period == "day":
        return start.timestamp() + 86_400
    month = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return month.timestamp()


def _until_next(period: str, now: float) -> float:
    return _period_end(period, now) - now


def _period_key(prefix: str, period: str, now: float) -> tuple[str, int]:
    """A counter for the current calendar period (UTC), expiring a little after it ends."""
    start = _period_start(period, now)
    return f"{prefix}:{start:%Y%m%d%H%M}", math.ceil(_until_next(period, now)) + 60


def storage_for(redis_url: str | None, *, key_prefix: str, timeout_s: float) -> Storage:
    """Redis when configured (shared by every process and replica), else this process's memory: the choice
    for every counter of the platform (quotas, failed sign-ins).

    Every Redis command, and every connection, gives up after ``timeout_s`` with a ``StorageError``: a Redis
    that hangs (paused, overloaded, cut off without a reset) then meets the same policy as one that is down,
    instead of holding the request for ever."""
    if not redis_url:
        return MemoryStorage()
    url = redis_url if redis_url.startswith("async+") else f"async+{redis_url}"
    return RedisStorage(url, wrap_exceptions=True, key_prefix=key_prefix, connect_timeout=timeout_s,
                        stream_timeout=timeout_s)
