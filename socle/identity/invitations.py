"""Account links: inviting a person, resetting a password, a forgotten password, and importing accounts from a CSV.

A link (``/ui/mot-de-passe?token=<secret>``: the access log masks that parameter) carries 256 random bits of
which only the SHA-256 is stored, as for sessions and API keys. It works once, until it expires
(``invitation_hours``, ``password_reset_minutes``), and a new link for an account voids its previous unused one.
Opening it changes nothing (mail filters open links to inspect them); setting the password through it marks it
used in the same transaction, by a conditional update, so that two browsers racing with one link cannot both
succeed. The account's web sessions end, and the person is signed in.

When a mail server is configured the link is e-mailed; it is always handed back too, so that the admin can pass
it on another way should the mail not arrive. A forgotten password is the one case without an admin: the link
then goes only by e-mail, the answer is the same whether the address has an account or not (the e-mail leaves
after the answer), and the requests are counted per address and per client like failed sign-ins.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.audit.service import Action, AuditTrail
from socle.db.models import AccountLink, Group, Role, User, utcnow
from socle.errors import BackendUnavailable, InvalidRequest, NotFound, SocleError, Unauthenticated
from socle.identity import imports, keys
from socle.identity.imports import ImportRow
from socle.identity.names import canonical_email, lookup_name, new_email
from socle.identity.permissions import Permission, Principal, require
from socle.identity.service import IdentityService, hash_password, principal_of_user, store_password
from socle.identity.throttle import SignInThrottle
from socle.mail import Mail, Mailer

log = logging.getLogger("socle.identity")
LINK_PATH = "/ui/mot-de-passe?token="  # a query parameter the access log masks
_SECRET_BYTES = 32
_MAX_TOKEN_LENGTH = 100
_KEEP_SPENT = timedelta(days=1)  # used or expired links are deleted this long after, at the next issue


class Purpose(StrEnum):
    INVITATION = "invitation"
    RESET = "reset"


@dataclass(frozen=True, slots=True)
class IssuedLink:
    """A link just made: ``token`` is the only copy of its secret."""

    user_id: int
    email: str
    name: str
    purpose: Purpose
    token: str
    expires_at: datetime
    mailed: bool = False

    @property
    def path(self) -> str:
        return LINK_PATH + self.token


@dataclass(frozen=True, slots=True)
class LinkView:
    """What the page of a live link shows: whose account, and what for."""

    email: str
    name: str
    purpose: Purpose
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ImportPlan:
    rows: list[ImportRow]

    @property
    def problems(self) -> int:
        return sum(len(row.problems) for row in self.rows)

    @property
    def ready(self) -> bool:
        return bool(self.rows) and not self.problems


_INVALID = NotFound("This link is unknown, already used or expired.", param="token", code="invalid_link")


class AccountLinks:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], audit: AuditTrail, identity: IdentityService, *,
                 mailer: Mailer | None, public_url: str | None, throttle: SignInThrottle,
                 invitation_ttl: timedelta, reset_ttl: timedelta) -> None:
        self._sessions = sessions
        self._audit = audit
        self._identity = identity
        self._mailer = mailer
        self._public_url = public_url
        self._throttle = throttle
        self._ttl = {Purpose.INVITATION: invitation_ttl, Purpose.RESET: reset_ttl}
        self._sending: set[asyncio.Task[None]] = set()

    @property
    def mails(self) -> bool:
        """Whether links go by e-mail (a mail server is configured): the forgotten-password page exists then."""
        return self._mailer is not None

    # ---- issuing ----------------------------------------------------------------------------------

    async def invite(self, actor: Principal, *, email: str, name: str = "", role: str = "user",
                     groups: list[str] | None = None) -> IssuedLink:
        """A new account and its invitation link (e-mailed when a mail server is configured)."""
        async with self._sessions() as session, session.begin():
            user = await self._identity.add_user_in(session, actor, email=email, name=name, role=role,
                                                    groups=groups or [], via="invitation")
            link = await self._issue_in(session, actor, user, Purpose.INVITATION)
        return await self._mailed(link)

    async def reset(self, actor: Principal, user_id: int) -> IssuedLink:
        """A new link for an existing account to set its password; the previous unused link stops working.
        The current password keeps working until the new one is set."""
        require(actor, Permission.USERS_ADMIN)
        async with self._sessions() as session, session.begin():
            user = await session.get(User, user_id)
            if user is None:
                raise NotFound(f"User {user_id} not found.", param="user_id")
            purpose = Purpose.RESET if await _has_password(session, user_id) else Purpose.INVITATION
            link = await self._issue_in(session, actor, user, purpose)
        return await self._mailed(link)

    async def forgotten(self, email: str, address: str) -> None:
        """A person who forgot their password asks for a link by e-mail. Nothing tells whether the address has an
        account: same answer, and the e-mail is sent after it. :class:`RateLimited` past the limits (counted
        whatever the address); :class:`NotFound` when no mail server is configured."""
        if self._mailer is None:
            raise NotFound("Password reset by e-mail is not offered here.", code="mail_not_configured")
        await self._throttle.attempt(email, address)  # never given back: each request counts
        link = None
        async with self._sessions() as session, session.begin():
            user = await session.scalar(select(User).where(User.email == canonical_email(email)))
            if user is not None and user.is_active:
                link = await self._issue_in(session, None, user, Purpose.RESET)
            reason = "sent" if link else "unknown_account" if user is None else "inactive_user"
            await self._audit.record_in(session, Action.PASSWORD_RESET_REQUESTED,
                                        target=("user", user.id) if user is not None else None,
                                        details={"outcome": reason})
        if link is not None:
            task = asyncio.create_task(self._mailed(link), name="password-reset-mail")
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _issue_in(self, session: AsyncSession, actor: Principal | None, user: User,
                        purpose: Purpose) -> IssuedLink:
        now = utcnow()
        await session.execute(delete(AccountLink).where(or_(  # the account's unused link, and old spent ones
            (AccountLink.user_id == user.id) & AccountLink.used_at.is_(None),
            AccountLink.expires_at <= now - _KEEP_SPENT, AccountLink.used_at <= now - _KEEP_SPENT)))
        token = secrets.token_urlsafe(_SECRET_BYTES)
        row = AccountLink(token_hash=keys.hash_secret(token), user_id=user.id, purpose=purpose.value,
                          created_by=actor.user_id if actor is not None else None, created_at=now,
                          expires_at=now + self._ttl[purpose])
        session.add(row)
        await session.flush()
        await self._audit.record_in(session, Action.ACCOUNT_LINK_CREATED, actor=actor, target=("user", user.id),
                                    details={"purpose": purpose.value, "link_id": row.id,
                                             "expires_at": row.expires_at.isoformat(timespec="seconds")})
        return IssuedLink(user.id, user.email, user.name, purpose, token, row.expires_at)

    async def _mailed(self, link: IssuedLink) -> IssuedLink:
        """The link, e-mailed when a mail server is configured; a mail server that fails only leaves it unsent
        (the admin still has the link to pass on)."""
        if self._mailer is None or self._public_url is None:
            return link
        try:
            await self._mailer.send(_mail(link, self._public_url + link.path))
        except BackendUnavailable:
            return link
        return replace(link, mailed=True)

    # ---- using a link -----------------------------------------------------------------------------

    async def open(self, token: str) -> LinkView:
        """The live link behind a presented secret; :class:`NotFound` (``invalid_link``) for anything else."""
        async with self._sessions() as session:
            row = await self._live(session, token)
            user = await session.get(User, row.user_id)
            assert user is not None  # the link goes with its account
            return LinkView(user.email, user.name, Purpose(row.purpose), row.expires_at)

    async def redeem(self, token: str, password: str) -> Principal:
        """Set the account's password through its link, which is spent; the account's other web sessions end.
        The principal to sign in; :class:`NotFound` for a link that does not work (any more), an
        :class:`InvalidRequest` for a password that breaks the rules (the link still works then)."""
        hashed = await hash_password(password)
        async with self._sessions() as session, session.begin():
            row = await self._live(session, token)
            spent = await session.execute(update(AccountLink).where(
                AccountLink.id == row.id, AccountLink.used_at.is_(None)).values(used_at=utcnow()))
            if spent.rowcount != 1:  # type: ignore[attr-defined]  # another request spent it first
                raise _INVALID
            user = await session.get(User, row.user_id)
            if user is None or not user.is_active:
                raise Unauthenticated("This account is disabled.", code="inactive_user")
            await store_password(session, user, hashed)
            principal = principal_of_user(user)
            await self._audit.record_in(session, Action.PASSWORD_SET, actor=principal, target=("user", user.id),
                                        details={"via": row.purpose, "link_id": row.id})
            await self._audit.record_in(session, Action.SIGN_IN, actor=principal, target=("user", user.id),
                                        details={"method": f"link_{row.purpose}"})
        return principal

    async def _live(self, session: AsyncSession, token: str) -> AccountLink:
        if not token or len(token) > _MAX_TOKEN_LENGTH:
            raise _INVALID
        row = await session.scalar(select(AccountLink).where(
            AccountLink.token_hash == keys.hash_secret(token), AccountLink.used_at.is_(None),
            AccountLink.expires_at > utcnow()))
        if row is None:
            raise _INVALID
        return row

    # ---- importing ---------------------------------------------------------------------------------

    async def plan_import(self, actor: Principal, data: bytes) -> ImportPlan:
        """Each line of the file with what would stop it (nothing is written): an address that is not one, is
        taken or appears twice, a role or a group that does not exist."""
        require(actor, Permission.USERS_ADMIN)
        rows = imports.parse(data)
        async with self._sessions() as session:
            roles = set(await session.scalars(select(Role.name)))
            groups = set(await session.scalars(select(Group.name)))
            emails = [_canonical_or_none(row) for row in rows]
            taken = set(await session.scalars(select(User.email).where(User.email.in_([e for e in emails if e]))))
        seen: set[str] = set()
        for row, email in zip(rows, emails, strict=True):
            if email is not None:
                row.email = email
                if email in taken:
                    row.problems.append(("email_taken", email))
                elif email in seen:
                    row.problems.append(("email_twice", email))
                seen.add(email)
            if len(row.name) > 200:
                row.problems.append(("name_too_long", row.name[:40] + "…"))
            if row.role not in roles:
                row.problems.append(("unknown_role", row.role))
            row.problems.extend(("unknown_group", g) for g in row.groups if lookup_name(g) not in groups)
        return ImportPlan(rows)

    async def import_accounts(self, actor: Principal, data: bytes) -> list[IssuedLink]:
        """Every account of the file and its invitation link, all in one transaction (none when one line is
        wrong: :class:`InvalidRequest` ``import_has_problems``); then the e-mails, one by one."""
        plan = await self.plan_import(actor, data)
        if not plan.ready:
            raise InvalidRequest(f"The file has {plan.problems} problem(s): nothing was imported.", param="file",
                                 code="import_has_problems")
        async with self._sessions() as session, session.begin():
            links = []
            for row in plan.rows:
                user = await self._identity.add_user_in(session, actor, email=row.email, name=row.name,
                                                        role=row.role, groups=list(row.groups), via="import")
                links.append(await self._issue_in(session, actor, user, Purpose.INVITATION))
            await self._audit.record_in(session, Action.USERS_IMPORTED, actor=actor,
                                        details={"count": len(links)})
        return [await self._mailed(link) for link in links]

    async def drain(self) -> None:
        """Wait for the e-mails still being sent (at shutdown, and in tests)."""
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)


async def _has_password(session: AsyncSession, user_id: int) -> bool:
    return bool(await session.scalar(select(func.count()).select_from(User)
                                     .where(User.id == user_id, User.password_hash.is_not(None))))


def _canonical_or_none(row: ImportRow) -> str | None:
    """The address in its stored form, or None with the line's problem noted."""
    if not row.email:
        row.problems.append(("email_missing", ""))
        return None
    try:
        return new_email(row.email)
    except SocleError as exc:
        row.problems.append((exc.code or "invalid_email", row.email))
        return None


def _mail(link: IssuedLink, url: str) -> Mail:
    """The e-mail that carries a link: plain French, the link on a line of its own, when it expires."""
    until = link.expires_at.strftime("%d/%m/%Y à %H:%M UTC")
    greeting = f"Bonjour {link.name}," if link.name else "Bonjour,"
    if link.purpose is Purpose.INVITATION:
        subject = "Votre compte Socle IA"
        what = ("Un compte vous a été ouvert sur Socle IA, la plateforme d'intelligence artificielle de votre "
                "administration. Pour choisir votre mot de passe et vous connecter, ouvrez ce lien :")
    else:
        subject = "Choisir un nouveau mot de passe Socle IA"
        what = ("Un nouveau mot de passe a été demandé pour votre compte Socle IA. Pour le choisir, ouvrez ce "
                "lien :")
    body = (f"{greeting}\n\n{what}\n\n{url}\n\nCe lien ne sert qu'une fois et expire le {until}. Votre adresse "
            f"de connexion : {link.email}\n\nSi vous n'êtes pas à l'origine de cette demande, ignorez ce message : "
            "votre mot de passe actuel reste valable.\n")
    return Mail(to=link.email, subject=subject, body=body)
