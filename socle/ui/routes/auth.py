"""Signing in and out.

Local accounts sign in with their password here, throttled per account and per client address
(``identity.throttle``). A password is set through a single-use link (an invitation, a reset: see
``identity.invitations``), asked for by e-mail when it is forgotten (only where a mail server is configured),
and changed in "Mon compte" by proving the current one. Any other way of proving who one is (ProConnect, see
``routes.proconnect``), a link included, ends the same way, in :func:`signed_in`: a new session, the previous
one closed, the cookie set. Signing out of a session opened through ProConnect ends ProConnect's session too,
when the provider offers it.
"""
from __future__ import annotations

import logging
import math
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import Response

from socle.api.strict import StrictRoute
from socle.audit.service import Action
from socle.errors import (
    BackendUnavailable,
    InvalidRequest,
    NotFound,
    RateLimited,
    SocleError,
    Unauthenticated,
)
from socle.identity.invitations import LinkView
from socle.ui import security
from socle.ui.security import COOKIE, LOGIN_COOKIE, SignedIn
from socle.ui.web import error_page, french, page, redirect

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=StrictRoute)
log = logging.getLogger("socle.ui")
_LOGIN_FORM_TTL_S = 3600
LINK_FORM_PATH = "/ui/mot-de-passe"  # the page of an invitation or reset link (its own form cookie's path)
SIGN_IN_PATH = "/ui/connexion"
Password = Annotated[str, Form(max_length=1024)]
FormToken = Annotated[str, Form(max_length=100)]
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
        response = await sign_in_page(request, suivant, email=email, status_code=429, error=(
            "Trop de tentatives de connexion ont échoué. Par sécurité, la connexion par mot de passe est "
            f"suspendue : réessayez dans {_minutes(exc)}."))
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


def _minutes(exc: RateLimited) -> str:
    minutes = max(1, math.ceil(exc.retry_after_s / 60))
    return f"{minutes} minute{'s' if minutes > 1 else ''}"


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
                    email=email, login_token=token, suivant=safe_next(target), proconnect=provider is not None,
                    forgotten=security.platform(request).account_links.mails)
    security.set_cookie(response, request, LOGIN_COOKIE, token, max_age=_LOGIN_FORM_TTL_S, path=SIGN_IN_PATH)
    return response


def _form_page(request: Request, template: str, *, title: str, path: str, status_code: int = 200,
               **context: object) -> Response:
    """A page whose form is sent without a session (a forgotten password, a link), bound like the sign-in form
    to a fresh token that its own short-lived cookie, scoped to ``path``, must match."""
    token = secrets.token_urlsafe(32)
    response = page(request, template, None, title=title, status_code=status_code, login_token=token, **context)
    security.set_cookie(response, request, LOGIN_COOKIE, token, max_age=_LOGIN_FORM_TTL_S, path=path)
    return response


# ---- a forgotten password ------------------------------------------------------------------------------

FORGOTTEN_PATH = "/ui/connexion/mot-de-passe-oublie"


@router.get("/connexion/mot-de-passe-oublie")
async def forgotten_form(request: Request) -> Response:
    """Offered only where links can be e-mailed (``SOCLE_SMTP_HOST``)."""
    _offers_forgotten(request)
    return _forgotten_page(request)


@router.post("/connexion/mot-de-passe-oublie")
async def forgotten(request: Request, email: Annotated[str, Form(max_length=320)], csrf_token: FormToken = "") -> Response:
    """The same answer whether the address has an account or not; counted like failed sign-ins."""
    _offers_forgotten(request)
    check_login_token(request, csrf_token)
    try:
        await security.platform(request).account_links.forgotten(email, security.client_address(request))
    except RateLimited as exc:
        response = _forgotten_page(request, email=email, status_code=429, error=(
            f"Trop de demandes pour cette adresse ou depuis ce poste : réessayez dans {_minutes(exc)}."))
        response.headers["retry-after"] = str(math.ceil(exc.retry_after_s))
        return response
    except BackendUnavailable:
        return _forgotten_page(request, email=email, status_code=503, error=(
            "La demande ne peut pas être traitée pour le moment : réessayez dans un instant."))
    return _forgotten_page(request, sent=True)


def _offers_forgotten(request: Request) -> None:
    if not security.platform(request).account_links.mails:
        raise NotFound("No mail server: a password is reset by an administrator.", code="mail_not_configured")


def _forgotten_page(request: Request, *, status_code: int = 200, **context: object) -> Response:
    return _form_page(request, "mot_de_passe_oublie.html", title="Mot de passe oublié", path=SIGN_IN_PATH,
                      status_code=status_code, **context)


# ---- the page of a link: choosing one's password -------------------------------------------------------

@router.get("/mot-de-passe")
async def link_form(request: Request, token: Annotated[str, Query(max_length=200)] = "") -> Response:
    """Opening the link changes nothing: only sending the form spends it."""
    try:
        view = await security.platform(request).account_links.open(token)
    except NotFound:
        return _invalid_link(request)
    return _link_page(request, token, view)


@router.post("/mot-de-passe")
async def use_link(request: Request, password: Password, confirmation: Password, token: FormToken = "",
                   csrf_token: FormToken = "") -> Response:
    """The password set, the link spent, the account's other sessions closed, and the person signed in."""
    check_login_token(request, csrf_token)
    links = security.platform(request).account_links
    try:
        view = await links.open(token)
        if password != confirmation:
            raise InvalidRequest("The two passwords differ.", param="confirmation", code="passwords_differ")
        principal = await links.redeem(token, password)
    except NotFound:
        return _invalid_link(request)
    except InvalidRequest as exc:
        return _link_page(request, token, view, status_code=400, error=french(exc))
    except Unauthenticated as exc:
        return error_page(request, None, 403, french(exc))
    return await signed_in(request, principal.user_id, "/ui/chat?ok=mot-de-passe-choisi")


def _link_page(request: Request, token: str, view: LinkView, *, status_code: int = 200,
               error: str | None = None) -> Response:
    invited = view.purpose == "invitation"
    return _form_page(request, "mot_de_passe_lien.html", title="Bienvenue" if invited else "Nouveau mot de passe",
                      path=LINK_FORM_PATH, status_code=status_code, link=view, token=token, invited=invited,
                      error=error)


def _invalid_link(request: Request) -> Response:
    return error_page(request, None, 404, "Ce lien ne fonctionne pas : il a déjà servi, il a expiré, ou un lien plus "
                      "récent l'a remplacé. Demandez-en un nouveau à l'équipe qui administre la plateforme"
                      + (", ou depuis « Mot de passe oublié » sur la page de connexion." if
                         security.platform(request).account_links.mails else "."))


# ---- changing one's password ------------------------------------------------------------------------------

@router.get("/compte/mot-de-passe")
async def change_form(request: Request, visitor: SignedIn) -> Response:
    return page(request, "mot_de_passe.html", visitor, title="Changer mon mot de passe")


@router.post("/compte/mot-de-passe")
async def change_password(request: Request, visitor: SignedIn, current: Password, password: Password,
                          confirmation: Password) -> Response:
    """The current password is checked as a sign-in is (and counted with the failed ones); every other session
    of the account ends."""
    def again(status_code: int, error: str) -> Response:
        return page(request, "mot_de_passe.html", visitor, title="Changer mon mot de passe", status_code=status_code,
                    error=error)

    if password != confirmation:
        return again(400, "Les deux saisies du nouveau mot de passe sont différentes.")
    throttle = security.sign_in_throttle(request)
    try:
        attempt = await throttle.attempt(visitor.principal.email, security.client_address(request))
    except RateLimited as exc:
        return again(429, f"Trop de tentatives ont échoué : réessayez dans {_minutes(exc)}.")
    try:
        await security.platform(request).identity.change_password(visitor.principal, current, password,
                                                                  keep_session=visitor.session.token)
    except Unauthenticated:
        return again(400, "Le mot de passe actuel est incorrect.")
    except InvalidRequest as exc:
        await throttle.succeeded(attempt)  # the current password was not even checked
        return again(400, french(exc))
    await throttle.succeeded(attempt)
    return redirect("/ui/compte?ok=mot-de-passe-change")
