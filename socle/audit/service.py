"""Recording security-relevant actions, reading them (``audit:read``), and checking the chain.

Services call :meth:`AuditTrail.record` (its own transaction, after the action) or
:meth:`AuditTrail.record_in` (inside the action's transaction: both are kept, or neither). The client's
address and the channel (API or UI) come from the request the HTTP layer is serving
(``socle.audit.context``) unless given.
"""
from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.audit import store
from socle.audit.chain import GENESIS, Sealed, seal
from socle.audit.context import current_origin
from socle.audit.store import AuditFilter
from socle.db.models import AuditEvent, utcnow
from socle.identity.permissions import Permission, Principal, require

MAX_DETAILS_CHARS = 4000
Target = tuple[str, int | str]


class Action(StrEnum):
    """The actions recorded. Details never hold personal data: ids, names of things, counts, reasons."""

    SIGN_IN = "auth.sign_in"
    SIGN_IN_FAILED = "auth.sign_in_failed"
    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"
    USER_DELETED = "user.deleted"
    PASSWORD_SET = "user.password_set"
    PASSWORD_CHANGED = "user.password_changed"
    PASSWORD_RESET_REQUESTED = "user.password_reset_requested"
    ACCOUNT_LINK_CREATED = "user.link_created"
    USERS_IMPORTED = "user.imported"
    GROUP_CREATED = "group.created"
    GROUP_DELETED = "group.deleted"
    GROUP_MEMBER_ADDED = "group.member_added"
    GROUP_MEMBER_REMOVED = "group.member_removed"
    ROLE_CREATED = "role.created"
    ROLE_UPDATED = "role.updated"
    ROLE_DELETED = "role.deleted"
    KEY_CREATED = "key.created"
    KEY_REVOKED = "key.revoked"
    QUOTA_CREATED = "quota.created"
    QUOTA_UPDATED = "quota.updated"
    QUOTA_DELETED = "quota.deleted"
    MODEL_CREATED = "model.created"
    MODEL_CHANGED = "model.changed"
    MODEL_DELETED = "model.deleted"
    MODEL_TESTED = "model.tested"
    COLLECTION_PUBLISHED = "collection.published"
    COLLECTION_UNPUBLISHED = "collection.unpublished"
    FILE_UPLOADED = "file.uploaded"
    FILE_DELETED = "file.deleted"
    FINE_TUNING_CREATED = "fine_tuning.created"
    FINE_TUNING_CANCELLED = "fine_tuning.cancelled"
    DATA_EXPORTED = "data.exported"
    USER_ERASED = "user.erased"
    OTHERS_DATA_READ = "data.read_others"
    AUDIT_EXPORTED = "audit.exported"
    AUDIT_PRUNED = "audit.pruned"
    SITE_SETTINGS_CHANGED = "site.settings_changed"
    RETENTION_CHANGED = "site.retention_changed"
    QUOTA_PRESETS_CHANGED = "site.quota_presets_changed"
    PROCONNECT_CHANGED = "site.proconnect_changed"
    SECRETS_RESEALED = "site.secrets_resealed"


@dataclass(frozen=True, slots=True)
class AuditView:
    """An entry as a reader sees it: the actor's present e-mail when the account still exists."""

    id: int
    at: datetime
    action: str
    actor_user_id: int | None
    actor_key_id: int | None
    actor_email: str | None
    target_type: str | None
    target_id: str | None
    details: dict[str, Any]
    address: str | None
    channel: str
    hash: str

    @property
    def actor_deleted(self) -> bool:
        return self.actor_user_id is not None and self.actor_email is None


@dataclass(frozen=True, slots=True)
class Verification:
    entries: int
    head: str  # the last entry's hash: kept elsewhere, it later proves that no entry was cut off the end
    broken_id: int | None = None  # the first entry that does not verify
    reason: str | None = None
    broken: int = 0  # how many do not
    head_found: bool | None = None  # whether an expected head (given to verify) is still in the chain

    @property
    def ok(self) -> bool:
        return self.broken_id is None and self.head_found is not False


class AuditTrail:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    # ---- recording ----------------------------------------------------------------------------------

    async def record(self, action: str, *, actor: Principal | None = None, target: Target | None = None,
                     details: Mapping[str, Any] | None = None, ip: str | None = None) -> None:
        """Append one entry in a transaction of its own. ``actor``: who did it (None: the platform itself);
        ``target``: what it was done to, as (type, id); ``details``: a small JSON object without personal
        data."""
        async with self._sessions() as session, session.begin():
            await self.record_in(session, action, actor=actor, target=target, details=details, ip=ip)

    async def record_in(self, session: AsyncSession, action: str, *, actor: Principal | None = None,
                        target: Target | None = None, details: Mapping[str, Any] | None = None,
                        ip: str | None = None) -> None:
        """Append one entry inside the caller's transaction: it is kept if, and only if, the action is."""
        await store.append(session, _entry(action, actor, target, details, ip))

    # ---- reading (audit:read) -----------------------------------------------------------------------

    async def events(self, actor: Principal, filters: AuditFilter, *, limit: int = 100,
                     offset: int = 0) -> list[AuditView]:
        """Newest first."""
        require(actor, Permission.AUDIT_READ)
        async with self._sessions() as session:
            rows = await store.page(session, filters, limit=limit, offset=offset)
            emails = await store.emails(session, _actors(rows))
        return [_view(row, emails) for row in rows]

    async def count(self, actor: Principal, filters: AuditFilter) -> int:
        require(actor, Permission.AUDIT_READ)
        async with self._sessions() as session:
            return await store.count(session, filters)

    async def export(self, actor: Principal, filters: AuditFilter) -> AsyncIterator[AuditView]:
        """Every matching entry, oldest first, read as it is consumed; the export itself is recorded first."""
        require(actor, Permission.AUDIT_READ)
        await self.record(Action.AUDIT_EXPORTED, actor=actor, details=_described(filters))
        return self._all(filters)

    async def _all(self, filters: AuditFilter) -> AsyncIterator[AuditView]:
        batch: list[AuditEvent] = []
        async for row in store.in_order(self._sessions, filters):
            batch.append(row)
            if len(batch) == 1000:
                for view in await self._views(batch):
                    yield view
                batch = []
        for view in await self._views(batch):
            yield view

    async def _views(self, rows: list[AuditEvent]) -> list[AuditView]:
        async with self._sessions() as session:
            emails = await store.emails(session, _actors(rows))
        return [_view(row, emails) for row in rows]

    # ---- integrity and retention --------------------------------------------------------------------

    async def verify(self, *, expected_head: str | None = None) -> Verification:
        """Walk the chain from its first entry: each entry's hash must match its content and link to the entry
        before it; a first entry that is not the genesis must be vouched for by a recorded pruning."""
        entries, first_link, anchors = 0, None, set()
        previous: AuditEvent | None = None
        broken_id: int | None = None
        reason: str | None = None
        broken = 0
        head_found = None if expected_head is None else False
        async for row in store.in_order(self._sessions):
            entries += 1
            problem = None
            if row.hash != seal(row.prev_hash, store.sealed(row)):
                problem = "its content does not match its hash (the entry was changed)"
            elif previous is None and row.prev_hash != GENESIS:
                first_link = row
            elif previous is not None and row.prev_hash != previous.hash:
                problem = (f"it does not follow entry {previous.id} (an entry between them was deleted, "
                           "or one was changed or moved)")
            if problem is not None:
                broken += 1
                if broken_id is None:
                    broken_id, reason = row.id, problem
            if row.action == Action.AUDIT_PRUNED and isinstance(row.details, dict):
                anchors.add(str(row.details.get("through_hash")))
            if expected_head is not None and row.hash == expected_head:
                head_found = True
            previous = row
        if first_link is not None and first_link.prev_hash not in anchors:
            broken += 1
            broken_id, reason = first_link.id, "entries before it were deleted without a recorded pruning"
        head = previous.hash if previous is not None else GENESIS
        return Verification(entries, head, broken_id, reason, broken, head_found)

    async def prune(self, before: datetime) -> int:
        """Delete the entries older than ``before`` (the retention period), and record that it was done, with
        the last deleted entry's hash, which the next entry still links to."""
        async with self._sessions() as session, session.begin():
            await store.lock(session)
            deleted, last = await store.delete_before(session, before)
            if last is not None:
                await self.record_in(session, Action.AUDIT_PRUNED, details={
                    "entries": deleted, "through_id": last.id, "through_hash": last.hash,
                    "before": before.isoformat(timespec="seconds")})
        return deleted


def _entry(action: str, actor: Principal | None, target: Target | None, details: Mapping[str, Any] | None,
           ip: str | None) -> Sealed:
    origin = current_origin.get()
    console = actor is not None and actor.user_id == 0  # the operator at the console (SYSTEM)
    channel = origin.channel if origin is not None else ("console" if console else "system")
    content = dict(details or {})
    if len(json.dumps(content, ensure_ascii=False)) > MAX_DETAILS_CHARS:
        raise ValueError(f"audit details over {MAX_DETAILS_CHARS} characters for {action}")
    return Sealed(
        at=utcnow(), action=str(action), actor_user_id=None if actor is None or console else actor.user_id,
        actor_key_id=actor.key_id if actor is not None else None,
        target_type=target[0] if target else None, target_id=str(target[1]) if target else None,
        details=content, address=ip if ip is not None else (origin.address if origin else None),
        channel=channel)


def _actors(rows: list[AuditEvent]) -> set[int]:
    return {row.actor_user_id for row in rows if row.actor_user_id is not None}


def _view(row: AuditEvent, emails: dict[int, str]) -> AuditView:
    email = emails.get(row.actor_user_id) if row.actor_user_id is not None else None
    return AuditView(row.id, row.at, row.action, row.actor_user_id, row.actor_key_id, email, row.target_type,
                     row.target_id, row.details or {}, row.address, row.channel, row.hash)


def _described(filters: AuditFilter) -> dict[str, Any]:
    return {name: (value.isoformat() if isinstance(value, datetime) else value)
            for name, value in (("action", filters.action), ("actor_user_id", filters.actor_user_id),
                                ("target_type", filters.target_type), ("target_id", filters.target_id),
                                ("since", filters.since), ("until", filters.until)) if value is not None}
