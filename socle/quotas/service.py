"""Quota rules: administration (``quotas:admin``), the cached copy the limiter reads on each call, the
presets the admin pages offer, and what the rules leave a person now (read from the quota store, consuming
nothing).

Rules change rarely and are read on every call: each process keeps them for ``quota_refresh_s``
seconds, so a change reaches every worker within that delay (at once on the worker that made it).
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.audit.service import Action, AuditTrail
from socle.db.integers import MAX_INT32, MAX_INTEGER
from socle.db.models import Quota
from socle.errors import BackendUnavailable, InvalidRequest, NotFound
from socle.identity.permissions import Permission, Principal, require
from socle.quotas.limiter import Rule, checks
from socle.quotas.store import QuotaStore, QuotaStoreUnavailable

SCOPES = ("key", "user", "group", "role", "global")
PERIODS = ("day", "month")
_LIMITS = ("requests_per_minute", "requests_per_day", "tokens_per_minute", "budget_tokens", "budget_cost")
_LARGEST = {"requests_per_minute": MAX_INT32, "requests_per_day": MAX_INT32, "tokens_per_minute": MAX_INT32,
            "budget_tokens": MAX_INTEGER, "budget_cost": float("1e300")}  # what each column holds
_MICRO = 1_000_000  # the limiter counts costs in millionths of the currency unit

PRESETS: dict[str, dict[str, Any]] = {
    # A person using the pages and a key or two: a few calls a minute while writing, a working day's worth.
    "agent": {"scope": "user", "requests_per_minute": 30, "requests_per_day": 1_000, "tokens_per_minute": 40_000,
              "budget_tokens": 3_000_000, "budget_period": "month"},
    # An internal application's key: steady traffic from many of its own users.
    "application": {"scope": "key", "requests_per_minute": 300, "requests_per_day": 50_000,
                    "tokens_per_minute": 300_000, "budget_tokens": 100_000_000, "budget_period": "month"},
    # A team (a group) shares one allowance: what a dozen agents use together.
    "equipe": {"scope": "group", "requests_per_minute": 120, "requests_per_day": 10_000,
               "tokens_per_minute": 200_000, "budget_tokens": 30_000_000, "budget_period": "month"},
}
"""The starting points the quota form offers (the admin changes any figure before saving): the code's
defaults; the administrators change the amounts in the site's settings (:mod:`socle.site`)."""
PRESET_AMOUNTS = ("requests_per_minute", "requests_per_day", "tokens_per_minute", "budget_tokens")
"""The figures of a preset an administrator may change (its scope and period are what make it that preset)."""


def preset_amounts() -> dict[str, dict[str, int]]:
    """The presets' amounts as the code sets them: what the site's settings start from."""
    return {name: {amount: int(preset[amount]) for amount in PRESET_AMOUNTS} for name, preset in PRESETS.items()}


def presets_with(amounts: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, Any]]:
    """The presets with the administrators' amounts over the code's (an amount not given keeps the code's)."""
    return {name: {**preset, **{amount: int(value) for amount, value in amounts.get(name, {}).items()
                                if amount in PRESET_AMOUNTS}}
            for name, preset in PRESETS.items()}


@dataclass(frozen=True, slots=True)
class Allowance:
    """One limit of one quota binding a person, and how much of it is used now."""

    quota_id: int
    scope: str
    subject: str  # as the rule names it: an id, a role's name, nothing for the whole platform
    model: str | None
    limit_name: str  # requests_per_minute, requests_per_day, tokens_per_minute, budget_tokens, budget_cost
    limit: float
    used: float
    budget_period: str

    @property
    def remaining(self) -> float:
        return max(self.limit - self.used, 0)


class QuotaService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], audit: AuditTrail, *,
                 refresh_s: float = 5.0) -> None:
        self._sessions = sessions
        self._audit = audit
        self._refresh_s = refresh_s
        self._cached: list[Rule] = []
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def rules(self) -> list[Rule]:
        if time.monotonic() < self._expires:
            return self._cached
        async with self._lock:
            if time.monotonic() >= self._expires:
                async with self._sessions() as session:
                    rows = await session.scalars(select(Quota).order_by(Quota.id))
                    self._cached = [_rule(row) for row in rows]
                self._expires = time.monotonic() + self._refresh_s
        return self._cached

    async def allowance(self, principal: Principal, store: QuotaStore, *,
                        key_ids: Collection[int] = ()) -> list[Allowance]:
        """What each quota binding ``principal`` (their account, their groups, their role, the whole platform,
        and the keys ``key_ids`` they own) leaves now, for any model: one read of the quota store, which
        consumes nothing. The store unreachable: :class:`BackendUnavailable`."""
        keys = {str(key) for key in key_ids}
        rules = [rule for rule in await self.rules() if _concerns(rule, principal, keys)]
        now = time.time()
        planned = [(rule, *checks(rule, principal, now)) for rule in rules]
        windows = [window for _, ws, _ in planned for window in ws]
        counters = [counter for _, _, cs in planned for counter in cs]
        if not windows and not counters:
            return []
        try:
            used = await store.peek(windows, counters, int(now * 1000))
        except QuotaStoreUnavailable as exc:
            raise BackendUnavailable("The quota store cannot be read right now.",
                                     code="quota_store_unavailable") from exc
        window_used, counter_used = iter(used[:len(windows)]), iter(used[len(windows):])
        lines = []
        for rule, _, _ in planned:
            for name in _LIMITS:
                limit = getattr(rule, name)
                if limit is None:
                    continue
                spent = next(window_used if name.startswith("requests") else counter_used)
                lines.append(Allowance(rule.id, rule.scope, rule.subject, rule.model, name, limit,
                                       spent / _MICRO if name == "budget_cost" else spent, rule.budget_period))
        return lines

    def forget(self) -> None:
        """Rules were changed behind this service (an erasure): read them again at the next call."""
        self._expires = 0.0

    async def list(self, actor: Principal, *, limit: int | None = None, offset: int = 0) -> list[Quota]:
        require(actor, Permission.QUOTAS_ADMIN)
        async with self._sessions() as session:
            return list(await session.scalars(select(Quota).order_by(Quota.id).limit(limit).offset(offset)))

    async def count(self, actor: Principal) -> int:
        require(actor, Permission.QUOTAS_ADMIN)
        async with self._sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(Quota)) or 0)

    async def create(self, actor: Principal, **fields: Any) -> Quota:
        require(actor, Permission.QUOTAS_ADMIN)
        _check(fields)
        quota = Quota(**fields)
        async with self._sessions() as session, session.begin():
            session.add(quota)
            await session.flush()
            await self._audit.record_in(session, Action.QUOTA_CREATED, actor=actor, target=("quota", quota.id),
                                        details=_described(quota))
        self._expires = 0.0
        return quota

    async def update(self, actor: Principal, quota_id: int, **fields: Any) -> Quota:
        require(actor, Permission.QUOTAS_ADMIN)
        async with self._sessions() as session, session.begin():
            quota = await session.get(Quota, quota_id)
            if quota is None:
                raise NotFound(f"Quota {quota_id} not found.", param="quota_id")
            for name, value in fields.items():
                setattr(quota, name, value)
            _check({c: getattr(quota, c) for c in ("scope", "subject", "model", "budget_period", *_LIMITS)})
            await self._audit.record_in(session, Action.QUOTA_UPDATED, actor=actor, target=("quota", quota_id),
                                        details=_described(quota))
        self._expires = 0.0
        return quota

    async def delete(self, actor: Principal, quota_id: int) -> None:
        require(actor, Permission.QUOTAS_ADMIN)
        async with self._sessions() as session, session.begin():
            quota = await session.get(Quota, quota_id)
            if quota is None:
                raise NotFound(f"Quota {quota_id} not found.", param="quota_id")
            await session.delete(quota)
            await self._audit.record_in(session, Action.QUOTA_DELETED, actor=actor, target=("quota", quota_id),
                                        details=_described(quota))
        self._expires = 0.0


def _check(fields: dict[str, Any]) -> None:
    scope = fields.get("scope")
    if scope not in SCOPES:
        raise InvalidRequest(f"scope must be one of {', '.join(SCOPES)}.", param="scope")
    subject = str(fields.get("subject") or "")
    for name in ("subject", "model"):
        if len(str(fields.get(name) or "")) > 200:  # the columns' size
            raise InvalidRequest(f"{name} has at most 200 characters.", param=name)
    if scope == "global" and subject:
        raise InvalidRequest("A global quota has no subject.", param="subject")
    if scope in ("key", "user", "group") and not (subject.isascii() and subject.isdigit()):
        raise InvalidRequest(f"A {scope} quota's subject is the {scope}'s id.", param="subject")
    if scope == "role" and not subject:
        raise InvalidRequest("A role quota's subject is the role's name.", param="subject")
    if fields.get("budget_period", "month") not in PERIODS:
        raise InvalidRequest(f"budget_period must be one of {', '.join(PERIODS)}.", param="budget_period")
    if all(fields.get(name) is None for name in _LIMITS):
        raise InvalidRequest(f"A quota sets at least one of {', '.join(_LIMITS)}.", param="requests_per_minute")
    for name in _LIMITS:
        value = fields.get(name)
        if value is not None and not 0 <= value <= _LARGEST[name]:  # NaN fails both comparisons
            raise InvalidRequest(f"{name} must be between 0 and {_LARGEST[name]}.", param=name)


def _concerns(rule: Rule, principal: Principal, key_ids: Collection[str]) -> bool:
    """The rule binds the person's calls to some model, or the calls of one of their keys."""
    if rule.scope == "key":
        return rule.subject in key_ids
    return rule.binds(principal, rule.model or "")


def _described(row: Quota) -> dict[str, Any]:
    """The rule as the audit trail keeps it: whom it binds (an id or a role's name), on what, how much."""
    return {name: getattr(row, name) for name in ("scope", "subject", "model", "budget_period", *_LIMITS)
            if getattr(row, name) is not None}


def _rule(row: Quota) -> Rule:
    return Rule(id=row.id, scope=row.scope, subject=row.subject, model=row.model,
                requests_per_minute=row.requests_per_minute, requests_per_day=row.requests_per_day,
                tokens_per_minute=row.tokens_per_minute, budget_tokens=row.budget_tokens,
                budget_cost=row.budget_cost, budget_period=row.budget_period)
