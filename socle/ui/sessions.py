"""Server-side sign-in sessions of the web UI.

The browser holds a 256-bit random secret in its cookie; the database holds only its SHA-256, so a copy of
the database signs no one in (a plain hash suffices for a secret of that entropy, see ``identity.keys``).
Each session carries its own CSRF token. A sign-in always opens a new session and closes the one the browser
came with, so a session id planted before sign-in is worthless after it (no fixation).
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.db.models import LoginSession, utcnow

_SECRET_BYTES = 32
_MAX_TOKEN_LENGTH = 100  # a presented cookie longer than any we issue is not even hashed


@dataclass(frozen=True, slots=True)
class OpenSession:
    token: str  # the cookie's value: the only copy of the secret
    user_id: int
    csrf_token: str
    expires_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, lifetime: timedelta) -> None:
        self._sessions = sessions
        self.lifetime = lifetime

    async def open(self, user_id: int, *, replacing: list[str] | tuple[str, ...] = ()) -> OpenSession:
        """A new session for a user who just proved who they are; the ones the browser came with are closed."""
        token, csrf = secrets.token_urlsafe(_SECRET_BYTES), secrets.token_urlsafe(_SECRET_BYTES)
        now = utcnow()
        opened = OpenSession(token, user_id, csrf, now + self.lifetime)
        async with self._sessions() as session, session.begin():
            if replacing:
                await session.execute(delete(LoginSession).where(LoginSession.id.in_([_digest(t) for t in replacing])))
            await session.execute(delete(LoginSession).where(LoginSession.expires_at <= now))  # housekeeping
            session.add(LoginSession(id=_digest(token), user_id=user_id, csrf_token=csrf, created_at=now,
                                     expires_at=opened.expires_at))
        return opened

    async def resolve(self, token: str | None) -> OpenSession | None:
        """The live session behind a cookie's value, or None (unknown, closed or expired)."""
        if not token or len(token) > _MAX_TOKEN_LENGTH:
            return None
        async with self._sessions() as session:
            row = await session.scalar(select(LoginSession).where(LoginSession.id == _digest(token)))
        if row is None or row.expires_at <= utcnow():
            return None
        return OpenSession(token, row.user_id, row.csrf_token, row.expires_at)

    async def close(self, token: str) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(delete(LoginSession).where(LoginSession.id == _digest(token)))
