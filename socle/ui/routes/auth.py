"""Signing in and out.

Local accounts sign in with their password here. Any other way of proving who one is (ProConnect, OIDC,
later) ends the same way, in :func:`signed_in`: a new session, the previous one closed, the cookie set.
"""
from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from socle.errors import Unauthenticated
from socle.ui import security
from socle.ui.security import COOKIE, LOGIN_COOKIE, SignedIn
from socle.ui.web import page, redirect

router = APIRouter(prefix="/ui", include_in_schema=False)
_LOGIN_FORM_TTL_S = 3600


def safe_next(target: str | None) -> str:
    """Only a page of the UI itself: never an address elsewhere (open redirect)."""
    if not target or not target.startswith("/ui/") or target.startswith("//") or "\\" in target:
        return "/ui/chat"
    return target


@router.get("")
@router.get("/")
async def home() -> Response:
    return redirect("/ui/chat")


@router.get("/connexion")
async def sign_in_form(request: Request, suivant: str | None = None) -> Response:
    """Shown even to a signed-in browser: signing in again (as someone else, or over a session planted by
    someone else) must stay possible, and it closes the previous session."""
    return _form(request, suivant)


@router.post("/connexion")
async def sign_in(request: Request, email: Annotated[str, Form(max_length=320)],
                  password: Annotated[str, Form(max_length=1024)],
                  csrf_token: Annotated[str, Form(max_length=100)] = "",
                  suivant: Annotated[str, Form(max_length=2000)] = "") -> Response:
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not security.same_origin(request) or not security.tokens_match(csrf_token, expected):
        raise security.CsrfRejected()
    try:
        principal = await security.platform(request).identity.verify_password(email, password)
    except Unauthenticated:
        return _form(request, suivant, email=email, status_code=401,
                     error="Adresse électronique ou mot de passe incorrect.")
    return await signed_in(request, principal.user_id, suivant)


async def signed_in(request: Request, user_id: int, target: str | None) -> Response:
    """The end of every sign-in: a fresh session id (the one the browser came with is closed), then the page
    the user was going to."""
    store = security.session_store(request)
    opened = await store.open(user_id, replacing=security.presented_sessions(request))
    response = redirect(safe_next(target))
    security.set_cookie(response, request, COOKIE, opened.token, max_age=int(store.lifetime.total_seconds()))
    security.clear_cookie(response, request, LOGIN_COOKIE, path="/ui/connexion")
    return response


@router.post("/deconnexion")
async def sign_out(request: Request, visitor: SignedIn) -> Response:
    await security.session_store(request).close(visitor.session.token)
    response = redirect("/ui/connexion?ok=deconnecte")
    security.clear_cookie(response, request, COOKIE)
    return response


def _form(request: Request, target: str | None, *, status_code: int = 200, error: str | None = None,
          email: str = "") -> Response:
    """The sign-in form, bound to a fresh token that its own short-lived cookie must match."""
    token = secrets.token_urlsafe(32)
    response = page(request, "connexion.html", None, title="Connexion", status_code=status_code, error=error,
                    email=email, login_token=token, suivant=safe_next(target))
    security.set_cookie(response, request, LOGIN_COOKIE, token, max_age=_LOGIN_FORM_TTL_S, path="/ui/connexion")
    return response
