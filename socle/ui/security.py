"""Who is signed in, and the checks every state-changing request passes.

- The session cookie (``socle_session``) is HttpOnly, SameSite=Lax, Secure unless ``SOCLE_UI_COOKIE_SECURE``
  is false, and scoped to ``/ui``.
- CSRF: every POST carries its session's token, as the ``csrf_token`` form field or the ``X-CSRF-Token``
  header (fetches), and comes from this origin when the browser says where it comes from; else 403.
  The sign-in form, which has no session yet, is bound to a short-lived cookie of its own (login CSRF).
- The session resolves to the same :class:`Principal` as an API key would, read afresh at each request.
- Forms may lead only to this site, and to the identity provider's pages when ProConnect is configured
  (the sign-in and sign-out redirect there): the policy's ``form-action`` names its origins.
"""
from __future__ import annotations

import hmac
import re
import urllib.parse
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from socle.api.deps import platform
from socle.api.origin import forwarded_client, trusted_proxies
from socle.errors import Unauthenticated
from socle.identity.oidc import OidcClient
from socle.identity.permissions import Principal
from socle.identity.sessions import OpenSession, SessionStore
from socle.identity.throttle import SignInThrottle

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
    """The web sessions, built with the platform."""
    return platform(request).web_sessions


def sign_in_throttle(request: Request) -> SignInThrottle:
    """The counters of failed password sign-ins, built with the platform."""
    return platform(request).sign_in_throttle


def identity_provider(request: Request) -> OidcClient | None:
    """ProConnect's client when the site's settings turn it on (``SOCLE_OIDC_*`` by default), else None: no
    button, no routes. The settings are those read for this request (the last read, before they are)."""
    built = platform(request)
    site = getattr(request.state, "site", None) or built.site.latest
    return built.identity_provider.client(site.proconnect)


def public_url(request: Request, path: str) -> str:
    """An address of this site as the browser reaches it: on the registered callback's origin when one is
    configured (behind a reverse proxy, the request's own may be the internal one), else the request's."""
    registered = platform(request).settings.oidc_redirect_uri
    if registered:
        parts = urllib.parse.urlsplit(registered)
        return f"{parts.scheme}://{parts.netloc}{path}"
    return str(request.base_url).rstrip("/") + path


def client_address(request: Request) -> str:
    """The browser's address: the connection's, or, behind a reverse proxy named in ``SOCLE_UI_TRUSTED_PROXIES``,
    the last address that the trusted proxies did not add to X-Forwarded-For (the ones before it are the
    client's to make up)."""
    peer = request.client.host if request.client else ""
    return forwarded_client(peer, request.headers.getlist("x-forwarded-for"),
                            trusted_proxies(platform(request).settings.ui_trusted_proxies))


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
    present = Visitor(principal, opened)
    request.state.visitor = present  # the error page still shows who is signed in, should the page fail
    return present


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
_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
           "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'{targets}; "
           "frame-ancestors 'none'")
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]+)?")  # nothing that could end the directive
_HEADERS = [
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
                extra = [header for header in page_headers(scope) if header[0] not in names]
                message["headers"] = [*message["headers"], *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


def page_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """What every response under ``/ui`` carries: also set by the 500 page, answered outside the middleware."""
    return [_policy(scope), *_HEADERS, _NO_STORE]


def _policy(scope: Scope) -> tuple[bytes, bytes]:
    """The content security policy, letting forms lead to the identity provider's origins (read when the
    response starts: the request may just have discovered them)."""
    built = getattr(getattr(scope.get("app"), "state", None), "platform", None)
    site = scope.get("state", {}).get("site") or (built.site.latest if built is not None else None)
    client = built.identity_provider.client(site.proconnect) if site is not None else None
    origins = sorted(o for o in client.origins() if _ORIGIN.fullmatch(o)) if client is not None else []
    targets = "".join(f" {origin}" for origin in origins)
    return b"content-security-policy", _POLICY.format(targets=targets).encode()
