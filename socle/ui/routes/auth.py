"""Signing in and out.

Local accounts sign in with their password here, throttled per account and per client address
(``identity.throttle``). Any other way of proving who one is (ProConnect, see ``routes.proconnect``) ends the
same way, in :func:`signed_in`: a new session, the previous one closed, the cookie set. Signing out of a
session opened through ProConnect ends ProConnect's session too, when the provider offers it.
"""
from __future__ import annotations

import logging
import math
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from socle.api.strict import StrictRoute
from socle.audit.service import Action
from socle.errors import BackendUnavailable, RateLimited, SocleError, Unauthenticated
from socle.ui import security
from socle.ui.security import COOKIE, LOGIN_COOKIE, SignedIn
from socle.ui.web import page, redirect

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=StrictRoute)
log = logging.getLogger("socle.ui")
_LOGIN_FORM_TTL_S = 3600
SIGNED_OUT = "/ui/connexion?ok=deconnecte"
SIGNED_OUT_RETURN = "/ui/deconnexion/fin"  # where the identity provider sends the browser back after its own


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
    return await sign_in_page(request, suivant)


@router.post("/connexion")
async def sign_in(request: Request, email: Annotated[str, Form(max_length=320)],
                  password: Annotated[str, Form(max_length=1024)],
                  csrf_token: Annotated[str, Form(max_length=100)] = "",
                  suivant: Annotated[str, Form(max_length=2000)] = "") -> Response:
    check_login_token(request, csrf_token)
    throttle = security.sign_in_throttle(request)
    try:
        attempt = await throttle.attempt(email, security.client_address(request))
    except RateLimited as exc:
        await security.platform(request).audit.record(Action.SIGN_IN_FAILED,
                                                      details={"method": "password", "reason": "throttled"})
        minutes = max(1, math.ceil(exc.retry_after_s / 60))
        response = await sign_in_page(request, suivant, email=email, status_code=429, error=(
            "Trop de tentatives de connexion ont échoué. Par sécurité, la connexion par mot de passe est "
            f"suspendue : réessayez dans {minutes} minute{'s' if minutes > 1 else ''}."))
        response.headers["retry-after"] = str(math.ceil(exc.retry_after_s))
        return response
    except BackendUnavailable:
        return await sign_in_page(request, suivant, email=email, status_code=503, error=(
            "La connexion par mot de passe est momentanément indisponible : réessayez dans un instant."))
    try:
        principal = await security.platform(request).identity.verify_password(email, password)
    except Unauthenticated:
        return await sign_in_page(request, suivant, email=email, status_code=401,
                                  error="Adresse électronique ou mot de passe incorrect.")
    await throttle.succeeded(attempt)
    return await signed_in(request, principal.user_id, suivant)


def check_login_token(request: Request, presented: str) -> None:
    """Login CSRF: the sign-in forms' token must match their own short-lived cookie, from this origin."""
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not security.same_origin(request) or not security.tokens_match(presented, expected):
        raise security.CsrfRejected()


async def signed_in(request: Request, user_id: int, target: str | None, *, id_token: str | None = None) -> Response:
    """The end of every sign-in: a fresh session id (the one the browser came with is closed), then the page
    the user was going to. ``id_token``: the identity provider's, to end its session at sign-out."""
    store = security.session_store(request)
    opened = await store.open(user_id, replacing=security.presented_sessions(request), id_token=id_token)
    response = redirect(safe_next(target))
    security.set_cookie(response, request, COOKIE, opened.token, max_age=int(store.lifetime.total_seconds()))
    security.clear_cookie(response, request, LOGIN_COOKIE, path="/ui/connexion")
    return response


@router.post("/deconnexion")
async def sign_out(request: Request, visitor: SignedIn) -> Response:
    id_token = await security.session_store(request).close(visitor.session.token)
    target = SIGNED_OUT
    provider = security.identity_provider(request)
    if id_token and provider is not None:
        try:
            target = await provider.end_session_url(id_token, security.public_url(request, SIGNED_OUT_RETURN)) \
                or target
        except SocleError as exc:  # signed out here all the same; the provider's session lasts its own time
            log.warning("could not end the identity provider's session: %s", exc.message)
    response = redirect(target)
    security.clear_cookie(response, request, COOKIE)
    return response


@router.get("/deconnexion/fin")
async def signed_out_everywhere() -> Response:
    """Where ProConnect sends the browser back once its own session is over too."""
    return redirect(SIGNED_OUT)


async def sign_in_page(request: Request, target: str | None, *, status_code: int = 200, error: str | None = None,
                       email: str = "") -> Response:
    """The sign-in forms, bound to a fresh token that their own short-lived cookie must match; the ProConnect
    button when it is configured."""
    provider = security.identity_provider(request)
    if provider is not None:
        try:
            await provider.metadata()  # its pages' origins go into this page's policy (form-action)
        except SocleError as exc:
            log.warning("ProConnect's discovery document could not be read: %s", exc.message)
    token = secrets.token_urlsafe(32)
    response = page(request, "connexion.html", None, title="Connexion", status_code=status_code, error=error,
                    email=email, login_token=token, suivant=safe_next(target), proconnect=provider is not None)
    security.set_cookie(response, request, LOGIN_COOKIE, token, max_age=_LOGIN_FORM_TTL_S, path="/ui/connexion")
    return response
