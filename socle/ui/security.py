"""Who is signed in, and the checks every state-changing request passes.

- The session cookie (``socle_session``) is HttpOnly, SameSite=Lax, Secure unless ``SOCLE_UI_COOKIE_SECURE``
  is false, and scoped to ``/ui``.
- CSRF: every POST carries its session's token, as the ``csrf_token`` form field or the ``X-CSRF-Token``
  header (fetches), and comes from this origin when the browser says where it comes from; else 403.
  The sign-in form, which has no session yet, is bound to a short-lived cookie of its own (login CSRF).
- The session resolves to the same :class:`Principal` as an API key would, read afresh at each request.
"""
from __future__ import annotations

import hmac
import urllib.parse
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from socle.api.deps import platform
from socle.errors import Unauthenticated
from socle.identity.permissions import Principal
from socle.ui.sessions import OpenSession, SessionStore

COOKIE = "socle_session"
LOGIN_COOKIE = "socle_connexion"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
COOKIE_PATH = "/ui"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


class SignInRequired(Exception):
    """No live session: pages redirect to the sign-in page, fetches get 401."""


class CsrfRejected(Exception):
    """A state-changing request without its session's token, or from another origin: 403."""


@dataclass(frozen=True, slots=True)
class Visitor:
    """The signed-in user as every page sees them."""

    principal: Principal
    session: OpenSession

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token


def session_store(request: Request) -> SessionStore:
    """One store per app, built on first use (the platform is opened in the app's lifespan)."""
    store: SessionStore | None = getattr(request.app.state, "ui_sessions", None)
    if store is None:
        p = platform(request)
        store = SessionStore(p.sessions, lifetime=timedelta(hours=p.settings.ui_session_hours))
        request.app.state.ui_sessions = store
    return store


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another site (Origin, else Referer)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return source is None
    return urllib.parse.urlsplit(source).netloc == request.headers.get("host")


async def presented_token(request: Request) -> str:
    """The CSRF token a request carries: its header (fetches) or its form field (forms)."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.headers.get("content-type", "").startswith(_FORMS):
        value = (await request.form()).get(CSRF_FIELD)  # parsed once: the route's own Form() reuses it
        return value if isinstance(value, str) else ""
    return ""


def tokens_match(presented: str, expected: str) -> bool:
    return bool(presented) and hmac.compare_digest(presented.encode(), expected.encode())


def presented_sessions(request: Request) -> list[str]:
    """Every ``socle_session`` value the browser sent. There may be several (a cookie set by someone else for
    another path or a parent domain): each is tried, where a plain cookie lookup would keep only one."""
    values = []
    for header in request.headers.getlist("cookie"):
        for part in header.split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and value:
                values.append(value.strip('"'))
    return values[:4]


async def current_session(request: Request) -> OpenSession | None:
    store = session_store(request)
    for token in presented_sessions(request):
        opened = await store.resolve(token)
        if opened is not None:
            return opened
    return None


async def visitor(request: Request) -> Visitor:
    """Deny by default: every page but sign-in takes this dependency."""
    opened = await current_session(request)
    if opened is None:
        raise SignInRequired()
    try:
        principal = await platform(request).identity.principal_of(opened.user_id)
    except Unauthenticated as exc:  # disabled or deleted since it signed in
        await session_store(request).close(opened.token)
        raise SignInRequired() from exc
    if request.method not in _SAFE_METHODS:
        if not same_origin(request) or not tokens_match(await presented_token(request), opened.csrf_token):
            raise CsrfRejected()
    return Visitor(principal, opened)


SignedIn = Annotated[Visitor, Depends(visitor)]


def set_cookie(response: Response, request: Request, name: str, value: str, *, max_age: int,
               path: str = COOKIE_PATH) -> None:
    response.set_cookie(name, value, max_age=max_age, path=path, httponly=True, samesite="lax",
                        secure=platform(request).settings.ui_cookie_secure)


def clear_cookie(response: Response, request: Request, name: str, *, path: str = COOKIE_PATH) -> None:
    response.delete_cookie(name, path=path, httponly=True, samesite="lax",
                           secure=platform(request).settings.ui_cookie_secure)


# Pages load nothing from elsewhere and run no inline script: a model's or a user's text that escaped
# its escaping would still not run. Inline styles are allowed for the DSFR's own scripts.
_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
     b"img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
     b"form-action 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]
_NO_STORE = (b"cache-control", b"no-store")


class SecurityHeaders:
    """Adds the headers above to every response under ``/ui`` (pages, fetches; not the static assets),
    and forbids caching anything personal."""

    def __init__(self, app: ASGIApp, *, prefix: str = "/ui/", static: str = "/ui/static/") -> None:
        self.app = app
        self.prefix = prefix
        self.static = static

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path.startswith(self.prefix) or path == self.prefix.rstrip("/")) or path.startswith(self.static):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message["headers"]}
                extra = [header for header in (*_HEADERS, _NO_STORE) if header[0] not in names]
                message["headers"] = [*message["headers"], *extra]
            await send(message)

        await self.app(scope, receive, with_headers)
