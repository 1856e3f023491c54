"""Server-side sign-in sessions of the web UI.

The browser holds a 256-bit random secret in its cookie; the database holds only its SHA-256, so a copy of
the database signs no one in (a plain hash suffices for a secret of that entropy, see ``identity.keys``).
Each session carries its own CSRF token. A sign-in always opens a new session and closes the one the browser
came with, so a session id planted before sign-in is worthless after it (no fixation).

A session ends at the first of: its absolute lifetime, ``idle`` without a request (a browser left open on
a shared desk), sign-out. The last request's time is written at most every ``touch_every`` (a minute at
most), not at every request.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.db.models import LoginSession, utcnow
from socle.identity.keys import hash_secret

_SECRET_BYTES = 32
_MAX_TOKEN_LENGTH = 100  # a presented cookie longer than any we issue is not even hashed


@dataclass(frozen=True, slots=True)
class OpenSession:
    token: str  # the cookie's value: the only copy of the secret
    user_id: int
    csrf_token: str
    expires_at: datetime


def session_id(token: str) -> str:
    """The stored id of the session behind a cookie's value: its secret's hash, as for an API key."""
    return hash_secret(token)


class SessionStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, lifetime: timedelta,
                 idle: timedelta) -> None:
        self._sessions = sessions
        self.lifetime = lifetime
        self.idle = idle
        self.touch_every = min(timedelta(minutes=1), idle / 10)

    async def open(self, user_id: int, *, replacing: list[str] | tuple[str, ...] = (),
                   id_token: str | None = None) -> OpenSession:
        """A new session for a user who just proved who they are; the ones the browser came with are closed.
        ``id_token``: the identity provider's, kept to end its session too at sign-out."""
        token, csrf = secrets.token_urlsafe(_SECRET_BYTES), secrets.token_urlsafe(_SECRET_BYTES)
        now = utcnow()
        opened = OpenSession(token, user_id, csrf, now + self.lifetime)
        async with self._sessions() as session, session.begin():
            if replacing:
                await session.execute(delete(LoginSession).where(LoginSession.id.in_([session_id(t) for t in replacing])))
            await session.execute(delete(LoginSession).where(or_(  # housekeeping
                LoginSession.expires_at <= now, LoginSession.last_seen_at <= now - self.idle)))
            session.add(LoginSession(id=session_id(token), user_id=user_id, csrf_token=csrf, created_at=now,
                                     expires_at=opened.expires_at, last_seen_at=now, id_token=id_token))
        return opened

    async def resolve(self, token: str | None) -> OpenSession | None:
        """The live session behind a cookie's value, or None (unknown, closed, expired or idle too long)."""
        if not token or len(token) > _MAX_TOKEN_LENGTH:
            return None
        digest, now = session_id(token), utcnow()
        async with self._sessions() as session, session.begin():  # writes only when it must (see above)
            row = await session.scalar(select(LoginSession).where(LoginSession.id == digest))
            if row is None or row.expires_at <= now:
                return None
            if row.last_seen_at <= now - self.idle:
                await session.execute(delete(LoginSession).where(LoginSession.id == digest))
                return None
            if row.last_seen_at <= now - self.touch_every:
                await session.execute(update(LoginSession).where(LoginSession.id == digest)
                                      .values(last_seen_at=now))
        return OpenSession(token, row.user_id, row.csrf_token, row.expires_at)

    async def close(self, token: str) -> str | None:
        """End a session; the identity provider's ID token it was opened with, if any."""
        digest = session_id(token)
        async with self._sessions() as session, session.begin():
            id_token = await session.scalar(select(LoginSession.id_token).where(LoginSession.id == digest))
            await session.execute(delete(LoginSession).where(LoginSession.id == digest))
        return id_token
