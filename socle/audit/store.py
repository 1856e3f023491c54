"""The audit trail's table: appending under one lock, reading by filters, walking the chain in id order.

Appends are serialised so that the whole platform (every worker, every replica) keeps one chain: on
PostgreSQL by a transaction-scoped advisory lock, on SQLite by the database's single write lock, taken by
the entry's own insertion before its predecessor is read.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.audit.chain import GENESIS, Sealed, seal
from socle.db.models import AuditEvent, User

_LOCK_KEY = 0x50C1EA0D17  # pg_advisory_xact_lock's key for the audit trail
_PENDING = "pending"


@dataclass(frozen=True, slots=True)
class AuditFilter:
    action: str | None = None  # an exact action, or a family with a trailing "." ("key.")
    actor_user_id: int | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def lock(session: AsyncSession) -> None:
    """On PostgreSQL, the trail's lock, held until the session's transaction ends (SQLite: :func:`append`)."""
    if session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


async def append(session: AsyncSession, entry: Sealed) -> AuditEvent:
    """Add ``entry`` at the end of the chain, in the session's transaction (the lock is held till its end)."""
    await lock(session)
    row = AuditEvent(at=entry.at, action=entry.action, actor_user_id=entry.actor_user_id,
                     actor_key_id=entry.actor_key_id, target_type=entry.target_type,
                     target_id=entry.target_id, details=entry.details, address=entry.address,
                     channel=entry.channel, prev_hash=_PENDING, hash=_PENDING)
    session.add(row)
    await session.flush()  # the insertion holds the write lock (SQLite) before the predecessor is read
    previous = await session.scalar(select(AuditEvent.hash).where(AuditEvent.id < row.id)
                                    .order_by(AuditEvent.id.desc()).limit(1))
    row.prev_hash = previous or GENESIS
    row.hash = seal(row.prev_hash, entry)
    await session.flush()
    return row


def sealed(row: AuditEvent) -> Sealed:
    return Sealed(at=row.at, action=row.action, actor_user_id=row.actor_user_id,
                  actor_key_id=row.actor_key_id, target_type=row.target_type, target_id=row.target_id,
                  details=row.details or {}, address=row.address, channel=row.channel)


def _where(filters: AuditFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.action:
        conditions.append(AuditEvent.action.startswith(filters.action, autoescape=True)
                          if filters.action.endswith(".") else AuditEvent.action == filters.action)
    if filters.actor_user_id is not None:
        conditions.append(AuditEvent.actor_user_id == filters.actor_user_id)
    if filters.target_type:
        conditions.append(AuditEvent.target_type == filters.target_type)
    if filters.target_id:
        conditions.append(AuditEvent.target_id == filters.target_id)
    if filters.since is not None:
        conditions.append(AuditEvent.at >= filters.since)
    if filters.until is not None:
        conditions.append(AuditEvent.at < filters.until)
    return conditions


async def page(session: AsyncSession, filters: AuditFilter, *, limit: int, offset: int) -> list[AuditEvent]:
    """Newest first."""
    query = (select(AuditEvent).where(*_where(filters)).order_by(AuditEvent.id.desc())
             .limit(limit).offset(offset))
    return list(await session.scalars(query))


async def count(session: AsyncSession, filters: AuditFilter) -> int:
    query = select(func.count()).select_from(AuditEvent).where(*_where(filters))
    return int(await session.scalar(query) or 0)


async def emails(session: AsyncSession, user_ids: set[int]) -> dict[int, str]:
    """The present e-mail of each account still there: names are resolved when read, never stored."""
    ids, found = sorted(user_ids), dict[int, str]()
    for start in range(0, len(ids), 1000):
        rows = await session.execute(select(User.id, User.email).where(User.id.in_(ids[start:start + 1000])))
        found.update({int(user_id): email for user_id, email in rows})
    return found


async def in_order(sessions: async_sessionmaker[AsyncSession], filters: AuditFilter | None = None, *,
                   batch: int = 1000) -> AsyncIterator[AuditEvent]:
    """Every entry (or those matching ``filters``), oldest first, read a batch at a time."""
    after = 0
    conditions = _where(filters) if filters is not None else []
    while True:
        async with sessions() as session:
            rows = list(await session.scalars(select(AuditEvent).where(AuditEvent.id > after, *conditions)
                                              .order_by(AuditEvent.id).limit(batch)))
        for row in rows:
            yield row
        if len(rows) < batch:
            return
        after = rows[-1].id


async def delete_before(session: AsyncSession, cutoff: datetime) -> tuple[int, AuditEvent | None]:
    """Delete the entries older than ``cutoff`` (a prefix of the chain, by id): how many, and the last one."""
    last = await session.scalar(select(AuditEvent).where(AuditEvent.at < cutoff)
                                .order_by(AuditEvent.id.desc()).limit(1))
    if last is None:
        return 0, None
    result: Any = await session.execute(delete(AuditEvent).where(AuditEvent.id <= last.id))
    return int(result.rowcount or 0), last

