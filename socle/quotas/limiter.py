"""Admitting a call against the quotas that bind its caller, and settling it afterwards.

Counters live in a quota store (``socle.quotas.store``): process memory when embedded, Redis when
``SOCLE_REDIS_URL`` is set, so that every worker and replica shares them exactly. Every binding rule of a
call is checked, and consumed only if all fit, in one atomic step (one round trip to Redis): a refused call
consumes nothing, and concurrent calls from any number of processes are never admitted past a limit.

- Requests per minute and per day: exact over a moving window (the last 60 s, the last 24 h).
- Tokens per minute: a per-minute counter, checked before the call and charged with the tokens the
  backend reports after it (as OpenAI does: one call may overshoot).
- Budgets (tokens or cost per day or month): the call reserves its worst case (prompt estimate plus
  max_tokens for every answer it may generate) before the backend is called, and is settled to what it
  really used after (a failed call uses nothing: its reservation is given back). Concurrent calls
  therefore never spend past a budget by more than one call's estimate error.

Settling a call is one more step, none when its rules have no counter to charge; in Redis it is not waited
for and rides with the next script the process sends (see ``RedisQuotaStore``).
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from limits.aio.storage import MemoryStorage, RedisStorage, Storage

from socle.errors import BackendUnavailable, RateLimited
from socle.identity.permissions import Principal
from socle.quotas.store import (
    Adjustment,
    Counter,
    QuotaStore,
    QuotaStoreUnavailable,
    Refusal,
    StoreObserver,
    Window,
    quota_store,
)

log = logging.getLogger("socle.quotas")
_MICRO = 1_000_000  # costs are counted in millionths of the currency unit
_WINDOWS = (("requests_per_minute", "rpm", "minute", 60_000), ("requests_per_day", "rpd", "day", 86_400_000))


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


@dataclass(slots=True)
class Admission:
    """A call let through: what it reserved, to be settled when its real use is known."""

    limiter: QuotaLimiter | None
    budgets: list[tuple[str, int, int]] = field(default_factory=list)  # (key, reserved tokens, expire_at)
    cost_budgets: list[tuple[str, int, int]] = field(default_factory=list)  # (key, reserved micro-cost, expire_at)
    token_counters: list[tuple[str, int]] = field(default_factory=list)  # (key, expire_at)
    settled: bool = False

    async def settle(self, tokens: int, cost: float) -> None:
        """Charge the real use (tokens, cost) in place of the reservation; idempotent. A call that failed
        settles to nothing used, which gives its reservation back."""
        if self.settled or self.limiter is None:
            return
        self.settled = True
        await self.limiter._settle(self.adjustments(tokens, round(cost * _MICRO)))

    def adjustments(self, tokens: int, micro_cost: int) -> list[Adjustment]:
        """What settling to (tokens, cost) changes: the reservations' differences, and tokens per minute."""
        changes = [Adjustment(key, tokens - reserved, expire_at) for key, reserved, expire_at in self.budgets]
        changes += [Adjustment(key, micro_cost - reserved, expire_at) for key, reserved, expire_at in self.cost_budgets]
        changes += [Adjustment(key, tokens, expire_at) for key, expire_at in self.token_counters]
        return [change for change in changes if change.delta]


UNLIMITED = Admission(limiter=None)


class QuotaLimiter:
    def __init__(self, rules: RuleSource, *, redis_url: str | None = None, key_prefix: str = "socle",
                 fail_open: bool = False, redis_timeout_s: float = 0.5, observe: StoreObserver | None = None) -> None:
        self._rules = rules
        self._observe = observe
        self.store: QuotaStore = quota_store(redis_url, key_prefix=key_prefix, timeout_s=redis_timeout_s,
                                             observe=observe)
        self.fail_open = fail_open

    async def admit(self, principal: Principal, model: str,
                    worst_case: Callable[[], tuple[int, float]]) -> Admission:
        """Let a call through, reserving its worst case (tokens, cost), or raise RateLimited.
        ``worst_case`` is only computed when a rule binds the call."""
        rules = [rule for rule in await self._rules.rules() if rule.binds(principal, model)]
        if not rules:
            return UNLIMITED
        tokens, cost = worst_case()
        now = time.time()
        plan = _Plan(rules, principal, tokens, round(cost * _MICRO), now)
        started = time.perf_counter()
        try:
            refusal = await self.store.admit(plan.windows, plan.counters, int(now * 1000))
        except QuotaStoreUnavailable as exc:
            self._observed("admit", started, failed=True)
            if self.fail_open:
                log.warning("quota store unreachable, serving without limits: %s", exc)
                return UNLIMITED
            raise BackendUnavailable("Quotas cannot be checked right now (the quota store is unreachable).",
                                     code="quota_store_unavailable") from exc
        self._observed("admit", started)
        if refusal is not None:
            raise plan.refused(refusal, now)
        return plan.admission(self)

    async def close(self) -> None:
        """Apply the settlements still waiting, then close the store's connections."""
        await self.store.close()

    async def _settle(self, adjustments: list[Adjustment]) -> None:
        """Hand the settlement to the store, which times it (metrics) when it reaches Redis."""
        if adjustments:
            await self.store.adjust(adjustments)

    def _observed(self, operation: str, started: float, *, failed: bool = False) -> None:
        if self._observe is not None:
            self._observe(operation, time.perf_counter() - started, failed=failed)


class _Plan:
    """One call's checks against its rules: the request windows, then tokens per minute, then budgets (the
    first that does not fit is the one reported), and what explains each refusal."""

    __slots__ = ("windows", "counters", "_reasons", "_budgets", "_cost_budgets", "_token_counters")

    def __init__(self, rules: list[Rule], principal: Principal, tokens: int, micro_cost: int, now: float) -> None:
        self.windows: list[Window] = []
        self.counters: list[Counter] = []
        self._reasons: list[Callable[[Refusal, float], RateLimited]] = []
        self._budgets: list[tuple[str, int, int]] = []
        self._cost_budgets: list[tuple[str, int, int]] = []
        self._token_counters: list[tuple[str, int]] = []
        owners = [(rule, rule.counter(principal)) for rule in rules]
        for rule, owner in owners:
            for attribute, name, period, span_ms in _WINDOWS:
                limit = getattr(rule, attribute)
                if limit is not None:
                    self.windows.append(Window(f"{name}:{owner}", limit, span_ms))
                    self._reasons.append(_requests_refusal(limit, period, span_ms))
        for rule, owner in owners:
            if rule.tokens_per_minute is not None:
                key, expire_at = _period_key(f"tpm:{owner}", "minute", now)
                self.counters.append(Counter(key, rule.tokens_per_minute, 1, 0, expire_at))
                self._reasons.append(_tokens_refusal(rule.tokens_per_minute))
                self._token_counters.append((key, expire_at))
        for rule, owner in owners:
            for budget, amount, unit, target in ((rule.budget_tokens, tokens, "tokens", self._budgets),
                                                 (rule.budget_cost, micro_cost, "cost", self._cost_budgets)):
                if budget is None:
                    continue
                limit = budget if unit == "tokens" else round(budget * _MICRO)
                key, expire_at = _period_key(f"budget-{unit}:{owner}", rule.budget_period, now)
                self.counters.append(Counter(key, limit, amount, amount, expire_at))
                self._reasons.append(_budget_refusal(rule, unit))
                target.append((key, amount, expire_at))

    def refused(self, refusal: Refusal, now: float) -> RateLimited:
        return self._reasons[refusal.index](refusal, now)

    def admission(self, limiter: QuotaLimiter) -> Admission:
        return Admission(limiter, self._budgets, self._cost_budgets, self._token_counters)


def checks(rule: Rule, principal: Principal, now: float) -> tuple[list[Window], list[Counter]]:
    """One rule's windows and counters for ``principal``, keyed as an admission keys them, in this order:
    requests per minute, per day, tokens per minute, budget in tokens, in cost (those the rule sets; a cost in
    millionths). What a read of what remains asks the store (``QuotaService.allowance``)."""
    plan = _Plan([rule], principal, 0, 0, now)
    return plan.windows, plan.counters


def _requests_refusal(limit: int, period: str, span_ms: int) -> Callable[[Refusal, float], RateLimited]:
    def refused(refusal: Refusal, now: float) -> RateLimited:
        retry = max((refusal.oldest_ms + span_ms) / 1000 - now, 0.0)
        return _refused(f"Rate limit reached: {limit} requests per {period}.", retry, "requests", limit,
                        max(limit - refusal.used, 0))
    return refused


def _tokens_refusal(limit: int) -> Callable[[Refusal, float], RateLimited]:
    def refused(refusal: Refusal, now: float) -> RateLimited:
        return _refused(f"Tokens per minute exhausted ({refusal.used}/{limit}).", _until_next("minute", now),
                        "tokens", limit, 0)
    return refused


def _budget_refusal(rule: Rule, unit: str) -> Callable[[Refusal, float], RateLimited]:
    def refused(refusal: Refusal, now: float) -> RateLimited:
        return RateLimited(f"The {rule.budget_period}ly {unit} budget is exhausted for this call "
                           f"(quota {rule.id}).", retry_after_s=_until_next(rule.budget_period, now),
                           code="insufficient_quota", error_type="insufficient_quota")
    return refused


def _refused(message: str, retry_after_s: float, unit: str, limit: int, remaining: int) -> RateLimited:
    reset = f"{math.ceil(retry_after_s)}s"
    return RateLimited(message, retry_after_s=retry_after_s, headers={
        f"x-ratelimit-limit-{unit}": str(limit), f"x-ratelimit-remaining-{unit}": str(remaining),
        f"x-ratelimit-reset-{unit}": reset})


@dataclass(frozen=True, slots=True)
class _Period:
    """A calendar period (UTC) as counters name it: its stamp, when it starts and when it ends."""

    stamp: str
    start: float
    end: float


_periods: dict[str, _Period] = {}


def _period(period: str, now: float) -> _Period:
    """The current calendar period, computed once per period (the request path asks on every call)."""
    known = _periods.get(period)
    if known is not None and known.start <= now < known.end:
        return known
    start = _period_start(period, now)
    _periods[period] = fresh = _Period(f"{start:%Y%m%d%H%M}", start.timestamp(), _period_end(start, period))
    return fresh


def _period_start(period: str, now: float) -> datetime:
    moment = datetime.fromtimestamp(now, UTC)
    if period == "minute":
        return moment.replace(second=0, microsecond=0)
    if period == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _period_end(start: datetime, period: str) -> float:
    if period == "minute":
        return start.timestamp() + 60
    if period == "day":
        return start.timestamp() + 86_400
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1).timestamp()


def _until_next(period: str, now: float) -> float:
    return _period(period, now).end - now


def _period_key(prefix: str, period: str, now: float) -> tuple[str, int]:
    """A counter for the current calendar period (UTC), expiring a minute after it ends (epoch seconds)."""
    current = _period(period, now)
    return f"{prefix}:{current.stamp}", math.ceil(current.end) + 60


def storage_for(redis_url: str | None, *, key_prefix: str, timeout_s: float) -> Storage:
    """A `limits` storage for the failed sign-in counters: Redis when configured (shared by every process and
    replica), else this process's memory (quotas have their own store: ``socle.quotas.store``).

    Every Redis command, and every connection, gives up after ``timeout_s`` with a ``StorageError``: a Redis
    that hangs (paused, overloaded, cut off without a reset) then meets the same policy as one that is down,
    instead of holding the request for ever."""
    if not redis_url:
        return MemoryStorage()
    url = redis_url if redis_url.startswith("async+") else f"async+{redis_url}"
    return RedisStorage(url, wrap_exceptions=True, key_prefix=key_prefix, connect_timeout=timeout_s,
                        stream_timeout=timeout_s)
