"""Reading usage: one's own, or anyone's with ``usage:read_all``; rows or sums by day, model and user.

The caller's scope is a condition of the query itself, not a filter applied afterwards.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.audit.service import Action, AuditTrail
from socle.db.models import UsageRecord, User
from socle.errors import InvalidRequest
from socle.identity.permissions import SYSTEM, Permission, Principal, require

GroupBy = Literal["day", "model", "user", "key", "endpoint", "status"]
_SUMS = ("prompt_tokens", "completion_tokens", "cost", "energy_kwh", "co2_kg")
RecordOrder = Literal["created_at", "cost", "total_tokens"]


@dataclass(frozen=True, slots=True)
class UsageFilter:
    user_id: int | None = None
    key_id: int | None = None
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    status: str | None = None


@dataclass(frozen=True, slots=True)
class ActiveUsers:
    """Distinct users who made at least one call: the platform's quantitative impact indicator."""

    per_day: dict[str, int]  # ISO date -> users that day
    per_week: dict[str, int]  # ISO date of the week's Monday -> users that week
    total: int  # users over the whole period


class UsageService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], audit: AuditTrail, *, currency: str) -> None:
        self._sessions = sessions
        self._audit = audit
        self.currency = currency

    async def _note_read_of_others(self, actor: Principal, filters: UsageFilter, *, per_person: bool) -> None:
        """Reading other people's own figures (rows, or sums per user or key) with ``usage:read_all`` is
        recorded in the audit trail; sums over everyone, and one's own usage, are not."""
        if not actor.can(Permission.USAGE_READ_ALL) or filters.user_id == actor.user_id:
            return
        if per_person or filters.user_id is not None or filters.key_id is not None:
            await self._audit.record(Action.OTHERS_DATA_READ, actor=actor,
                                     target=("user", filters.user_id) if filters.user_id is not None else None,
                                     details={"data": "usage", "key_id": filters.key_id} if filters.key_id
                                     else {"data": "usage"})

    def _where(self, actor: Principal, filters: UsageFilter) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if not actor.can(Permission.USAGE_READ_ALL):
            conditions.append(UsageRecord.user_id == actor.user_id)  # one's own usage only
        if filters.user_id is not None:
            conditions.append(UsageRecord.user_id == filters.user_id)
        if filters.key_id is not None:
            conditions.append(UsageRecord.key_id == filters.key_id)
        if filters.model is not None:
            conditions.append(UsageRecord.model == filters.model)
        if filters.status is not None:
            conditions.append(UsageRecord.status == filters.status)
        if filters.since is not None:
            conditions.append(UsageRecord.created_at >= filters.since)
        if filters.until is not None:
            conditions.append(UsageRecord.created_at < filters.until)
        return conditions

    async def records(self, actor: Principal, filters: UsageFilter, *, limit: int = 100, offset: int = 0,
                      order_by: RecordOrder = "created_at", descending: bool = True) -> list[UsageRecord]:
        """Rows, newest first unless ``order_by`` (the Albert API's orders: by time, cost or tokens) says."""
        await self._note_read_of_others(actor, filters, per_person=True)
        key = {"created_at": UsageRecord.created_at, "cost": UsageRecord.cost,
               "total_tokens": UsageRecord.prompt_tokens + UsageRecord.completion_tokens}[order_by]
        keys = (key.desc(), UsageRecord.id.desc()) if descending else (key.asc(), UsageRecord.id.asc())
        query = (select(UsageRecord).where(*self._where(actor, filters))
                 .order_by(*keys).limit(limit).offset(offset))
        async with self._sessions() as session:
            return list(await session.scalars(query))

    async def totals(self, actor: Principal, filters: UsageFilter, group_by: list[GroupBy]) -> list[dict[str, Any]]:
        """Sums of requests, tokens, cost, energy and carbon, per distinct value of ``group_by``."""
        if len(set(group_by)) != len(group_by):
            raise InvalidRequest("group_by names a field twice.", param="group_by")
        await self._note_read_of_others(actor, filters, per_person=bool({"user", "key"} & set(group_by)))
        keys = [_dimension(name).label(name) for name in group_by]
        query: Select[Any] = select(
            *keys, func.count().label("requests"),
            *(func.coalesce(func.sum(getattr(UsageRecord, name)), 0).label(name) for name in _SUMS),
            func.avg(UsageRecord.latency_ms).label("avg_latency_ms"),
        ).where(*self._where(actor, filters))
        if keys:
            query = query.group_by(*keys).order_by(*keys)
        async with self._sessions() as session:
            rows = (await session.execute(query)).mappings().all()
        return [_clean(dict(row)) for row in rows]

    async def emails(self, actor: Principal, user_ids: Iterable[int]) -> dict[int, str]:
        """The e-mail addresses of the users whose usage the caller reads (anyone's with ``usage:read_all``,
        else only one's own): reports name people, not numbers. A deleted user has none."""
        wanted = set(user_ids) if actor.can(Permission.USAGE_READ_ALL) else set(user_ids) & {actor.user_id}
        ids, found = sorted(wanted), dict[int, str]()
        async with self._sessions() as session:
            for start in range(0, len(ids), 1000):  # bounded statements, whatever the number of users
                rows = await session.execute(select(User.id, User.email).where(User.id.in_(ids[start:start + 1000])))
                found.update({int(user_id): email for user_id, email in rows})
        return found

    async def active_users(self, actor: Principal, filters: UsageFilter) -> ActiveUsers:
        """Active users per day, per week and over the period, across the platform (``usage:read_all``).

        The distinct (day, user) pairs are read once and counted here: a week's users are not the sum of its
        days' users, and SQL has no week function common to SQLite and PostgreSQL."""
        require(actor, Permission.USAGE_READ_ALL)
        day = _dimension("day")
        query = (select(day.label("day"), UsageRecord.user_id)
                 .where(*self._where(actor, filters), UsageRecord.user_id != SYSTEM.user_id)  # people only
                 .group_by(day, UsageRecord.user_id))
        async with self._sessions() as session:
            pairs = [(_iso(row.day), int(row.user_id)) for row in await session.execute(query)]
        per_day = Counter(day_ for day_, _ in pairs)
        weeks = {(_monday(day_), user) for day_, user in pairs}
        per_week = Counter(week for week, _ in weeks)
        return ActiveUsers(dict(sorted(per_day.items())), dict(sorted(per_week.items())),
                           len({user for _, user in pairs}))


def _iso(day: date | str) -> str:
    return day.isoformat() if isinstance(day, date) else str(day)  # PostgreSQL gives a date, SQLite a string


def _monday(day: str) -> str:
    start = date.fromisoformat(day)
    return (start - timedelta(days=start.weekday())).isoformat()


def _dimension(name: GroupBy) -> ColumnElement[Any]:
    if name == "day":
        return func.date(UsageRecord.created_at)
    return {"model": UsageRecord.model, "user": UsageRecord.user_id, "key": UsageRecord.key_id,
            "endpoint": UsageRecord.endpoint, "status": UsageRecord.status}[name]


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    if isinstance(row.get("day"), date):
        row["day"] = row["day"].isoformat()  # PostgreSQL gives a date, SQLite a string
    for name in ("prompt_tokens", "completion_tokens", "requests"):
        row[name] = int(row[name])
    row["total_tokens"] = row["prompt_tokens"] + row["completion_tokens"]
    return row
