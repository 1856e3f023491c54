"""Identity service: authentication of API keys, and the administration of users, groups, roles, keys.

Every public method takes the acting :class:`Principal` and checks its permission here, so the API
and the CLI apply the same rules. Keys belonging to someone else answer :class:`NotFound`.
"""
from __future__ import annotations

import asyncio
import functools
import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cachetools import TTLCache
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import undefer

from socle.audit.service import Action, AuditTrail
from socle.db.models import ApiKey, Group, LoginSession, Role, User, utcnow
from socle.errors import Conflict, InvalidRequest, NotFound, Unauthenticated
from socle.identity import keys
from socle.identity.names import canonical_email, lookup_name, new_email, readable_name
from socle.identity.permissions import PLATFORM_PERMISSIONS, SYSTEM, Catalogue, Permission, Principal, require
from socle.identity.sessions import session_id

_BAD_KEY = "Invalid API key: provide a valid key as 'Authorization: Bearer sk-socle-…'."
_BAD_CREDENTIALS = "Wrong e-mail or password."
_ROLE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # as the API's schema says
MIN_PASSWORD_LENGTH = 12  # ANSSI's floor for a password that is not checked against a complexity rule
_MAX_PASSWORD_LENGTH = 1024
_HASHER = PasswordHasher()  # argon2id with RFC 9106's low-memory parameters (64 MiB, 3 passes)


@dataclass(frozen=True, slots=True)
class _CachedKey:
    secret_hash: str
    principal: Principal
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key just created: ``secret`` is the only copy of the full key, shown once."""

    key: ApiKey
    secret: str


@dataclass(frozen=True, slots=True)
class Subject:
    """A person, a group or a key as a picker shows it: its id and the words that name it."""

    id: int
    label: str


class IdentityService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], audit: AuditTrail, *,
                 permissions: Catalogue = PLATFORM_PERMISSIONS, cache_ttl_s: float = 5.0) -> None:
        self._sessions = sessions
        self._audit = audit
        self.permissions = permissions  # what a role may hold: the platform's, and the installed apps'
        # Verified keys by public id: keeps the database off the hot path for a few seconds.
        self._cache: TTLCache[str, _CachedKey] | None = (
            TTLCache(maxsize=100_000, ttl=cache_ttl_s) if cache_ttl_s > 0 else None
        )
        self._loading: dict[str, asyncio.Future[_CachedKey]] = {}  # keys being read, by public id

    def _checked(self, permissions: list[str]) -> list[str]:
        unknown = sorted(set(permissions) - set(self.permissions))
        if unknown:
            raise InvalidRequest(f"Unknown permissions: {', '.join(unknown)}. "
                                 f"Known: {', '.join(sorted(self.permissions))}.", param="permissions")
        return sorted(set(permissions))

    # ---- authentication -------------------------------------------------------------------------

    async def authenticate(self, token: str | None) -> Principal:
        """The principal behind a presented key; :class:`Unauthenticated` for anything else."""
        if not token:
            raise Unauthenticated("Missing API key: send it as 'Authorization: Bearer <key>'.")
        parsed = keys.parse(token)
        if parsed is None:
            raise Unauthenticated(_BAD_KEY)
        cached = self._cache.get(parsed.public_id) if self._cache is not None else None
        if cached is None:
            cached = await self._loaded(parsed.public_id)
        if not keys.secret_matches(parsed.secret, cached.secret_hash):
            raise Unauthenticated(_BAD_KEY)
        if cached.expires_at is not None and cached.expires_at <= utcnow():
            raise Unauthenticated("This API key has expired.", code="expired_api_key")
        return cached.principal

    async def _loaded(self, public_id: str) -> _CachedKey:
        """The key read once for all the calls that present it while it is not cached: when its cache entry
        expires under a burst, a thousand calls wait on one query instead of draining the database pool."""
        loading = self._loading.get(public_id)
        if loading is None:
            loading = asyncio.ensure_future(self._load_and_cache(public_id))
            self._loading[public_id] = loading

            def done(task: asyncio.Future[_CachedKey]) -> None:
                self._loading.pop(public_id, None)
                if not task.cancelled():
                    task.exception()  # retrieved here: every waiter may have left

            loading.add_done_callback(done)
        return await asyncio.shield(loading)  # a caller that leaves does not cancel the others' query

    async def _load_and_cache(self, public_id: str) -> _CachedKey:
        cached = await self._load_key(public_id)
        if self._cache is not None:
            self._cache[public_id] = cached
        return cached

    async def _load_key(self, public_id: str) -> _CachedKey:
        async with self._sessions() as session:
            row = await session.scalar(select(ApiKey).where(ApiKey.public_id == public_id))
            if row is None or row.revoked_at is not None or not row.user.is_active:
                # Same answer and same work for unknown, revoked or disabled: compare against a dummy.
                keys.secret_matches("", "0" * 64)
                raise Unauthenticated(_BAD_KEY)
            return _CachedKey(row.secret_hash, _principal(row.user, key_id=row.id), row.expires_at)

    def forget(self, public_id: str) -> None:
        if self._cache is not None:
            self._cache.pop(public_id, None)

    def forget_all(self) -> None:
        if self._cache is not None:
            self._cache.clear()

    # ---- passwords (the web UI's local accounts) ----------------------------------------------------

    async def set_password(self, actor: Principal, user_id: int, password: str) -> None:
        """Set a user's password (argon2id); the user's open web sessions end, wherever they are."""
        if actor.user_id != user_id:
            require(actor, Permission.USERS_ADMIN)
        hashed = await hash_password(password)
        async with self._sessions() as session, session.begin():
            user = await session.get(User, user_id)
            if user is None:
                raise NotFound(f"User {user_id} not found.", param="user_id")
            await store_password(session, user, hashed)
            await self._audit.record_in(session, Action.PASSWORD_SET, actor=actor, target=("user", user_id))

    async def change_password(self, actor: Principal, current: str, new: str, *, keep_session: str) -> None:
        """One's own password, changed by proving the current one; every other web session of the account ends
        (``keep_session``: the cookie's value of the one making the change). A wrong current password:
        :class:`Unauthenticated`, as at sign-in, after the same work."""
        hashed = await hash_password(new)
        async with self._sessions() as session:
            stored = await session.scalar(select(User.password_hash).where(User.id == actor.user_id))
        if not await asyncio.to_thread(_password_matches, stored, current[:_MAX_PASSWORD_LENGTH]):
            await self._audit.record(Action.SIGN_IN_FAILED, actor=actor, target=("user", actor.user_id),
                                     details={"method": "password_change", "reason": "wrong_password"})
            raise Unauthenticated(_BAD_CREDENTIALS, code="wrong_current_password")
        async with self._sessions() as session, session.begin():
            user = await session.get(User, actor.user_id)
            if user is None:
                raise NotFound(f"User {actor.user_id} not found.", param="user_id")
            await store_password(session, user, hashed, keep_session=keep_session)
            await self._audit.record_in(session, Action.PASSWORD_CHANGED, actor=actor, target=("user", user.id))

    async def has_password(self, actor: Principal) -> bool:
        """Whether one's own account has a password (an account that signs in only through ProConnect has
        none, so "Mon compte" offers no change of it)."""
        async with self._sessions() as session:
            return await session.scalar(select(User.password_hash).where(User.id == actor.user_id)) is not None

    async def verify_password(self, email: str, password: str) -> Principal:
        """The principal of an active user whose password this is; :class:`Unauthenticated` otherwise.

        Unknown e-mails, accounts without a password and disabled accounts cost the same hash
        verification and get the same answer, so neither timing nor message tells which it was."""
        async with self._sessions() as session:
            user = await session.scalar(select(User).where(User.email == canonical_email(email))
                                        .options(undefer(User.password_hash)))
        stored = user.password_hash if user is not None else None
        matches = await asyncio.to_thread(_password_matches, stored, password[:_MAX_PASSWORD_LENGTH])
        if user is None or stored is None or not matches or not user.is_active:
            reason = "unknown_account" if user is None else "no_password" if stored is None else \
                "wrong_password" if not matches else "inactive_user"
            await self._audit.record(Action.SIGN_IN_FAILED, target=("user", user.id) if user else None,
                                     details={"method": "password", "reason": reason})
            raise Unauthenticated(_BAD_CREDENTIALS, code="invalid_credentials")
        if _HASHER.check_needs_rehash(stored):  # the parameters were raised since: upgrade this hash now
            await self._rehash(user.id, password)
        principal = _principal(user, key_id=None)
        await self._audit.record(Action.SIGN_IN, actor=principal, target=("user", user.id),
                                 details={"method": "password"})
        return principal

    async def principal_of(self, user_id: int) -> Principal:
        """A signed-in user's principal, read afresh: a disabled or deleted account stops at once."""
        async with self._sessions() as session:
            user = await session.get(User, user_id)
            if user is None or not user.is_active:
                raise Unauthenticated("This account is disabled or no longer exists.", code="inactive_user")
            return _principal(user, key_id=None)

    async def sign_in_federated(self, email: str, *, name: str = "", create_with_role: str | None = None) -> Principal:
        """The principal of the active account with this e-mail address, which an identity provider (ProConnect)
        has just vouched for. With no such account: one is created with ``create_with_role`` when that is
        allowed, else :class:`Unauthenticated` (``no_account``); a disabled account: ``inactive_user``."""
        email = canonical_email(email)
        try:
            return await self._federated(email, name, create_with_role)
        except IntegrityError:  # created at the same instant by a concurrent sign-in: that one is it
            return await self._federated(email, name, None)

    async def _federated(self, email: str, name: str, create_with_role: str | None) -> Principal:
        async with self._sessions() as session, session.begin():
            user = await session.scalar(select(User).where(User.email == email))
            if user is None and create_with_role is not None:
                user = User(email=new_email(email), name=name, role=await _role_by_name(session, create_with_role), groups=[])
                session.add(user)
                await session.flush()
                await self._audit.record_in(session, Action.USER_CREATED, target=("user", user.id),
                                            details={"role": create_with_role, "via": "proconnect"})
            if user is None:
                raise Unauthenticated(f"No account has the e-mail address {email!r}.", code="no_account")
            if not user.is_active:
                raise Unauthenticated("This account is disabled.", code="inactive_user")
            principal = _principal(user, key_id=None)
            await self._audit.record_in(session, Action.SIGN_IN, actor=principal, target=("user", user.id),
                                        details={"method": "proconnect"})
            return principal

    async def _rehash(self, user_id: int, password: str) -> None:
        hashed = await asyncio.to_thread(_HASHER.hash, password)
        async with self._sessions() as session, session.begin():
            user = await session.get(User, user_id)
            if user is not None:
                user.password_hash = hashed

    # ---- bootstrap --------------------------------------------------------------------------------

    async def bootstrap_admin(self, email: str, key_file: Path, *, key: str | None = None) -> str | None:
        """Create the first admin and a key for it when the platform has no user yet.

        The key is ``key`` when the deployment gives one (a secret it keeps itself: only its hash is stored,
        no file is written); otherwise a new one, written to ``key_file`` (mode 0600). Returned once; None
        when users exist.
        """
        async with self._sessions() as session:
            if await session.scalar(select(func.count()).select_from(User)):
                return None
        user = await self.create_user(SYSTEM, email=email, name="Administrator", role="admin")
        issued = await self.create_key(SYSTEM, name="bootstrap", user_id=user.id, given=key)
        if key is not None:
            return issued.secret
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(issued.secret + "\n")
        os.chmod(key_file, 0o600)
        return issued.secret

    # ---- users ------------------------------------------------------------------------------------

    async def create_user(self, actor: Principal, *, email: str, name: str = "", role: str = "user",
                          groups: list[str] | None = None) -> User:
        require(actor, Permission.USERS_ADMIN)
        async with self._sessions() as session, session.begin():
            user = await self.add_user_in(session, actor, email=email, name=name, role=role, groups=groups or [])
        return await self.get_user(actor, user.id)

    async def add_user_in(self, session: AsyncSession, actor: Principal, *, email: str, name: str, role: str,
                          groups: list[str], via: str | None = None) -> User:
        """A new account, inside the caller's transaction (an invitation, an import: all kept or none);
        ``via``: how it came (recorded in the audit trail)."""
        require(actor, Permission.USERS_ADMIN)
        email = new_email(email)
        role_row = await _role_by_name(session, role)
        user = User(email=email, name=name, role=role_row, groups=[await _group_by_name(session, g) for g in groups])
        session.add(user)
        try:
            await session.flush()
        except IntegrityError as exc:
            raise Conflict(f"A user with e-mail {email!r} already exists.", param="email",
                           code="email_taken") from exc
        details: dict[str, object] = {"role": role, "groups": sorted(groups)}
        if via is not None:
            details["via"] = via
        await self._audit.record_in(session, Action.USER_CREATED, actor=actor, target=("user", user.id),
                                    details=details)
        return user

    async def list_users(self, actor: Principal, *, limit: int = 100, offset: int = 0) -> list[User]:
        require(actor, Permission.USERS_ADMIN)
        async with self._sessions() as session:
            rows = await session.scalars(select(User).order_by(User.id).limit(limit).offset(offset))
            return list(rows.unique())

    async def count_users(self, actor: Principal) -> int:
        require(actor, Permission.USERS_ADMIN)
        async with self._sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(User)) or 0)

    async def get_user(self, actor: Principal, user_id: int) -> User:
        if actor.user_id != user_id:
            require(actor, Permission.USERS_ADMIN)
        async with self._sessions() as session:
            user = await session.get(User, user_id)
            if user is None:
                raise NotFound(f"User {user_id} not found.", param="user_id")
            return user

    async def find_user(self, actor: Principal, email: str) -> User:
        require(actor, Permission.USERS_ADMIN)
        async with self._sessions() as session:
            user = await session.scalar(select(User).where(User.email == canonical_email(email)))
            if user is None:
                raise NotFound(f"No user with e-mail {email!r}.", param="email")
            return user

    async def update_user(self, actor: Principal, user_id: int, *, name: str | None = None,
                          role: str | None = None, is_active: bool | None = None,
                          groups: list[str] | None = None) -> User:
        require(actor, Permission.USERS_ADMIN)
        async with self._sessions() as session, session.begin():
            user = await session.get(User, user_id)
            if user is None:
                raise NotFound(f"User {user_id} not found.", param="user_id")
            changes: dict[str, object] = {}
            if name is not None and name != user.name:
                user.name = name
                changes["name"] = "changed"  # the name itself is personal data: not in the trail
            if role is not None and role != user.role.name:
                user.role = await _role_by_name(session, role)
                changes["role"] = role
            if is_active is not None and is_active != user.is_active:
                user.is_active = is_active
                changes["is_active"] = is_active
            if groups is not None and sorted(groups) != sorted(g.name for g in user.groups):
                user.groups = [await _group_by_name(session, g) for g in groups]
                changes["groups"] = sorted(groups)
            if changes:
                await self._audit.record_in(session, Action.USER_UPDATED, actor=actor, target=("user", user_id),
                                            details=changes)
        self.forget_all()  # permissions or activity changed: cached principals are stale
        return await self.get_user(actor, user_id)

    # Deleting a user is an erasure of everything about them, across every store: socle.compliance.erasure.

    # ---- groups -----------------------------------------------------------------------------------

    async def create_group(self, actor: Principal, *, name: str, description: str = "") -> Group:
        require(actor, Permission.USERS_ADMIN)
        name = readable_name(name)
        async with self._sessions() as session, session.begin():
            group = Group(name=name, description=description, members=[])
            session.add(group)
            try:
                await session.flush()
            except IntegrityError as exc:
                raise Conflict(f"A group named {name!r} already exists.", param="name") from exc
            await self._audit.record_in(session, Action.GROUP_CREATED, actor=actor, target=("group", group.id),
                                        details={"name": name})
        return group

    async def list_groups(self, actor: Principal, *, limit: int | None = None, offset: int = 0) -> list[Group]:
        require(actor, Permission.USERS_ADMIN)
        async with self._sessions() as session:
            return list(await session.scalars(select(Group).order_by(Group.id).limit(limit).offset(offset)))

    async def count_groups(self, actor: Principal) -> int:
        require(actor, Permission.USERS_ADMIN)
        async with self._sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(Group)) or 0)

    async def set_membership(self, actor: Principal, group_id: int, user_id: int, *, member: bool) -> Group:
        require(actor, Permission.USERS_ADMIN)
        async with self._sessions() as session, session.begin():
            group = await session.get(Group, group_id)
            user = await session.get(User, user_id)
            if group is None:
                raise NotFound(f"Group {group_id} not found.", param="group_id")
            if user is None:
                raise NotFound(f"User {user_id} not found.", param="user_id")
            if member and user not in group.members:
                group.members.append(user)
            elif not member and user in group.members:
                group.members.remove(user)
            else:
                return group
            action = Action.GROUP_MEMBER_ADDED if member else Action.GROUP_MEMBER_REMOVED
            await self._audit.record_in(session, action, actor=actor, target=("group", group_id),
                                        details={"user_id": user_id})
        self.forget_all()
        return group

    async def delete_group(self, actor: Principal, group_id: int) -> None:
        require(actor, Permission.USERS_ADMIN)
        async with self._sessions() as session, session.begin():
            group = await session.get(Group, group_id)
            if group is None:
                raise NotFound(f"Group {group_id} not found.", param="group_id")
            await session.delete(group)
            await self._audit.record_in(session, Action.GROUP_DELETED, actor=actor, target=("group", group_id),
                                        details={"name": group.name})
        self.forget_all()

    # ---- roles ------------------------------------------------------------------------------------

    async def list_roles(self, actor: Principal) -> list[Role]:
        """For those who give roles to users (``users:admin``) and those who define them (``roles:admin``)."""
        if not actor.can(Permission.ROLES_ADMIN):
            require(actor, Permission.USERS_ADMIN)
        async with self._sessions() as session:
            return list(await session.scalars(select(Role).order_by(Role.id)))

    async def get_role(self, actor: Principal, role_id: int) -> Role:
        require(actor, Permission.ROLES_ADMIN)
        async with self._sessions() as session:
            role = await session.get(Role, role_id)
            if role is None:
                raise NotFound(f"Role {role_id} not found.", param="role_id")
            return role

    async def role_holders(self, actor: Principal) -> dict[int, int]:
        """How many users hold each role (a role still held cannot be deleted)."""
        require(actor, Permission.ROLES_ADMIN)
        async with self._sessions() as session:
            rows = await session.execute(select(User.role_id, func.count()).group_by(User.role_id))
            return {int(role_id): int(count) for role_id, count in rows}

    async def create_role(self, actor: Principal, *, name: str, permissions: list[str],
                          description: str = "") -> Role:
        require(actor, Permission.ROLES_ADMIN)
        if not _ROLE_NAME.fullmatch(name):
            raise InvalidRequest("A role's name has 1 to 64 lowercase letters, digits, '_' or '-'.", param="name",
                                 code="invalid_role_name")
        role = Role(name=name, description=description, permissions=self._checked(permissions), builtin=False)
        async with self._sessions() as session, session.begin():
            session.add(role)
            try:
                await session.flush()
            except IntegrityError as exc:
                raise Conflict(f"A role named {name!r} already exists.", param="name", code="role_exists") from exc
            await self._audit.record_in(session, Action.ROLE_CREATED, actor=actor, target=("role", role.id),
                                        details={"name": name, "permissions": role.permissions})
        return role

    async def update_role(self, actor: Principal, role_id: int, *, permissions: list[str] | None = None,
                          description: str | None = None) -> Role:
        require(actor, Permission.ROLES_ADMIN)
        async with self._sessions() as session, session.begin():
            role = await session.get(Role, role_id)
            if role is None:
                raise NotFound(f"Role {role_id} not found.", param="role_id")
            if permissions is not None:
                if role.name == "admin" and Permission.ALL not in permissions:
                    raise InvalidRequest("The admin role keeps every permission ('*').", param="permissions",
                                         code="admin_keeps_all")
                role.permissions = self._checked(permissions)
            if description is not None:
                role.description = description
            await self._audit.record_in(session, Action.ROLE_UPDATED, actor=actor, target=("role", role_id),
                                        details={"name": role.name, "permissions": role.permissions})
        self.forget_all()
        return role

    async def delete_role(self, actor: Principal, role_id: int) -> None:
        require(actor, Permission.ROLES_ADMIN)
        async with self._sessions() as session, session.begin():
            role = await session.get(Role, role_id)
            if role is None:
                raise NotFound(f"Role {role_id} not found.", param="role_id")
            if role.builtin:
                raise InvalidRequest(f"The built-in role {role.name!r} cannot be deleted.", param="role_id",
                                     code="builtin_role")
            if await session.scalar(select(func.count()).select_from(User).where(User.role_id == role_id)):
                raise Conflict(f"Role {role.name!r} is still given to users.", param="role_id", code="role_in_use")
            await session.delete(role)
            await self._audit.record_in(session, Action.ROLE_DELETED, actor=actor, target=("role", role_id),
                                        details={"name": role.name})

    # ---- API keys ---------------------------------------------------------------------------------

    async def create_key(self, actor: Principal, *, name: str = "", user_id: int | None = None,
                         expires_at: datetime | None = None, given: str | None = None) -> IssuedKey:
        """A new key; ``given``: the key itself, made outside (the first admin's, see ``bootstrap_admin``)."""
        owner_id = actor.user_id if user_id is None else user_id
        require(actor, Permission.KEYS_ALL if owner_id != actor.user_id else Permission.KEYS_OWN)
        if expires_at is not None and expires_at <= utcnow():
            raise InvalidRequest("expires_at must be in the future.", param="expires_at")
        secret, public_id, secret_hash = keys.new_key() if given is None else keys.adopt(given)
        async with self._sessions() as session, session.begin():
            owner = await session.get(User, owner_id)
            if owner is None:
                raise NotFound(f"User {owner_id} not found.", param="user_id")
            key = ApiKey(public_id=public_id, secret_hash=secret_hash, name=name, user=owner,
                         expires_at=expires_at)
            session.add(key)
            await session.flush()
            await self._audit.record_in(session, Action.KEY_CREATED, actor=actor, target=("key", key.id),
                                        details={"owner_user_id": owner_id, "public_id": public_id})
        return IssuedKey(key=key, secret=secret)

    async def find_subjects(self, actor: Principal, kind: str, text: str, *, limit: int = 10) -> list[Subject]:
        """People (by name or address), groups (by name) or live keys (by name or their owner's address) whose
        words contain ``text``: what the admin pages' pickers offer. For those who administer accounts or
        quotas; keys also for ``keys:all``."""
        return await self._subjects(actor, kind, text=text.strip().lower(), limit=limit)

    async def name_subjects(self, actor: Principal, kind: str, ids: Collection[int]) -> dict[int, Subject]:
        """The subjects of these ids, by id (a quota's list names whom each binds)."""
        if not ids:
            return {}
        return {subject.id: subject for subject in await self._subjects(actor, kind, ids=ids, limit=len(ids))}

    async def _subjects(self, actor: Principal, kind: str, *, text: str | None = None,
                        ids: Collection[int] | None = None, limit: int) -> list[Subject]:
        if not (actor.can(Permission.QUOTAS_ADMIN) or actor.can(Permission.USERS_ADMIN)
                or (kind == "key" and actor.can(Permission.KEYS_ALL))):
            require(actor, Permission.QUOTAS_ADMIN)
        async with self._sessions() as session:
            if kind == "user":
                users = select(User).order_by(User.email).limit(limit)
                if text:
                    users = users.where(func.lower(User.email).contains(text, autoescape=True)
                                        | func.lower(User.name).contains(text, autoescape=True))
                if ids is not None:
                    users = users.where(User.id.in_(ids))
                return [Subject(u.id, f"{u.name} <{u.email}>" if u.name else u.email)
                        for u in await session.scalars(users)]
            if kind == "group":
                groups = select(Group).order_by(Group.name).limit(limit)
                if text:
                    groups = groups.where(func.lower(Group.name).contains(text, autoescape=True))
                if ids is not None:
                    groups = groups.where(Group.id.in_(ids))
                return [Subject(g.id, g.name) for g in await session.scalars(groups)]
            if kind == "key":
                found = select(ApiKey).join(User, ApiKey.user_id == User.id).order_by(ApiKey.name, ApiKey.id) \
                    .limit(limit)
                if text:
                    found = found.where(ApiKey.revoked_at.is_(None),
                                        func.lower(ApiKey.name).contains(text, autoescape=True)
                                        | func.lower(User.email).contains(text, autoescape=True))
                if ids is not None:
                    found = found.where(ApiKey.id.in_(ids))
                return [Subject(k.id, f"{k.name or k.public_id} ({k.user.email})")
                        for k in (await session.scalars(found)).unique()]
        raise InvalidRequest("kind must be one of user, group, key.", param="kind")

    async def list_keys(self, actor: Principal, *, user_id: int | None = None) -> list[ApiKey]:
        """The caller's keys; with ``keys:all``, anyone's (all users' when ``user_id`` is None)."""
        query = select(ApiKey).order_by(ApiKey.id)
        if not actor.can(Permission.KEYS_ALL):
            require(actor, Permission.KEYS_OWN)
            query = query.where(ApiKey.user_id == actor.user_id)
        elif user_id is not None:
            query = query.where(ApiKey.user_id == user_id)
        async with self._sessions() as session:
            return list((await session.scalars(query)).unique())

    async def revoke_key(self, actor: Principal, key_id: int) -> ApiKey:
        async with self._sessions() as session, session.begin():
            query = select(ApiKey).where(ApiKey.id == key_id)
            if not actor.can(Permission.KEYS_ALL):
                require(actor, Permission.KEYS_OWN)
                query = query.where(ApiKey.user_id == actor.user_id)
            key = await session.scalar(query)
            if key is None:
                raise NotFound(f"API key {key_id} not found.", param="key_id")
            if key.revoked_at is None:
                key.revoked_at = utcnow()
                await self._audit.record_in(session, Action.KEY_REVOKED, actor=actor, target=("key", key_id),
                                            details={"owner_user_id": key.user_id})
        self.forget(key.public_id)
        return key


def check_password(password: str) -> None:
    """The platform's rules for a password (ANSSI's: long rather than complicated), or :class:`InvalidRequest`."""
    if len(password) < MIN_PASSWORD_LENGTH or not password.strip():
        raise InvalidRequest(f"A password has at least {MIN_PASSWORD_LENGTH} characters.", param="password",
                             code="password_too_short")
    if len(password) > _MAX_PASSWORD_LENGTH:
        raise InvalidRequest(f"A password has at most {_MAX_PASSWORD_LENGTH} characters.", param="password",
                             code="password_too_long")


async def hash_password(password: str) -> str:
    """The argon2id hash of a password that follows the rules; about 50 ms of CPU, off the event loop."""
    check_password(password)
    return await asyncio.to_thread(_HASHER.hash, password)


async def store_password(session: AsyncSession, user: User, hashed: str, *, keep_session: str | None = None) -> None:
    """A new password hash for the user, inside the caller's transaction: their web sessions end (all of them,
    or all but ``keep_session``, the cookie's value of the one that changed it)."""
    user.password_hash = hashed
    ending = delete(LoginSession).where(LoginSession.user_id == user.id)
    if keep_session is not None:
        ending = ending.where(LoginSession.id != session_id(keep_session))
    await session.execute(ending)


def principal_of_user(user: User) -> Principal:
    """A signed-in person's principal (no key)."""
    return _principal(user, key_id=None)


def _principal(user: User, *, key_id: int | None) -> Principal:
    return Principal(user_id=user.id, email=user.email, role=user.role.name,
                     permissions=frozenset(user.role.permissions), group_ids=frozenset(g.id for g in user.groups),
                     key_id=key_id)


@functools.cache
def _dummy_hash() -> str:
    """What an unknown account's password is compared with, so that it costs as much as a real one."""
    return _HASHER.hash("no account has this password")


def _password_matches(stored_hash: str | None, password: str) -> bool:
    """Constant work: with no stored hash, a dummy one is verified, and the answer is no."""
    try:
        return _HASHER.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def _role_by_name(session: AsyncSession, name: str) -> Role:
    role = await session.scalar(select(Role).where(Role.name == name))
    if role is None:
        raise InvalidRequest(f"Unknown role {name!r}.", param="role")
    return role


async def _group_by_name(session: AsyncSession, name: str) -> Group:
    group = await session.scalar(select(Group).where(Group.name == lookup_name(name)))
    if group is None:
        raise InvalidRequest(f"Unknown group {name!r}.", param="groups")
    return group
