"""Signing in with ProConnect (OpenID Connect), when ``SOCLE_OIDC_ISSUER`` configures it.

The button posts the sign-in form's token here; the browser leaves for the provider carrying ``state``, a
``nonce`` and a PKCE challenge, and keeps the attempt (state, nonce, verifier, the page it was going to) in a
short-lived HttpOnly cookie scoped to these two addresses: only the browser that started a sign-in can finish
it, so a callback address sent by someone else signs no one in (login CSRF). The checks themselves are
``identity.oidc``'s; the account is found (or created, if allowed) by the identity service; the end is
:func:`signed_in`, as for every sign-in.
"""
from __future__ import annotations

import base64
import json
import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from socle.api.strict import StrictRoute
from socle.audit.service import Action
from socle.errors import SocleError, Unauthenticated
from socle.identity.oidc import Attempt
from socle.ui import security
from socle.ui.routes.auth import check_login_token, safe_next, sign_in_page, signed_in
from socle.ui.web import error_page, inline, redirect

router = APIRouter(prefix="/ui/connexion/proconnect", include_in_schema=False, route_class=StrictRoute)
log = logging.getLogger("socle.ui")
ATTEMPT_COOKIE = "socle_proconnect"
ATTEMPT_PATH = "/ui/connexion/proconnect"
RETURN_PATH = ATTEMPT_PATH + "/retour"
_ATTEMPT_TTL_S = 600


_NOT_CONFIGURED = "La connexion avec ProConnect n'est pas proposée sur cette plateforme."


def _redirect_uri(request: Request) -> str:
    return security.platform(request).settings.oidc_redirect_uri or security.public_url(request, RETURN_PATH)


@router.post("")
async def start(request: Request, csrf_token: Annotated[str, Form(max_length=100)] = "",
                suivant: Annotated[str, Form(max_length=2000)] = "") -> Response:
    provider = security.identity_provider(request)
    if provider is None:
        return error_page(request, None, 404, _NOT_CONFIGURED)
    check_login_token(request, csrf_token)
    attempt = Attempt.new()
    try:
        url = await provider.authorization_url(attempt, _redirect_uri(request))
    except SocleError as exc:
        return await sign_in_page(request, suivant, **inline(exc))
    response = redirect(url)
    security.set_cookie(response, request, ATTEMPT_COOKIE, _encode(attempt, safe_next(suivant)),
                        max_age=_ATTEMPT_TTL_S, path=ATTEMPT_PATH)
    return response


@router.get("/retour")
async def finish(request: Request) -> Response:
    provider = security.identity_provider(request)
    if provider is None:
        return error_page(request, None, 404, _NOT_CONFIGURED)
    settings = security.platform(request).settings
    kept = _decode(request.cookies.get(ATTEMPT_COOKIE, ""))
    target = kept[1] if kept else None
    try:
        if kept is None:
            raise Unauthenticated("No sign-in was started from this browser, or it expired.", code="oidc_no_attempt")
        person = await provider.identify(kept[0], request.query_params, _redirect_uri(request))
        principal = await security.platform(request).identity.sign_in_federated(
            person.email, name=person.name,
            create_with_role=settings.oidc_default_role if settings.oidc_create_users else None)
    except SocleError as exc:
        log.info("ProConnect sign-in refused (%s): %s", exc.code, exc.message)
        await security.platform(request).audit.record(
            Action.SIGN_IN_FAILED, details={"method": "proconnect", "reason": exc.code or exc.kind})
        response = await sign_in_page(request, target, **inline(exc))
    else:
        response = await signed_in(request, principal.user_id, target, id_token=person.id_token)
    security.clear_cookie(response, request, ATTEMPT_COOKIE, path=ATTEMPT_PATH)  # an attempt is used once
    return response


def _encode(attempt: Attempt, target: str) -> str:
    data = {"state": attempt.state, "nonce": attempt.nonce, "verifier": attempt.code_verifier, "next": target}
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _decode(value: str) -> tuple[Attempt, str] | None:
    if not value or len(value) > 4096:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        attempt = Attempt(str(data["state"]), str(data["nonce"]), str(data["verifier"]))
        return attempt, safe_next(str(data["next"]))
    except (ValueError, KeyError, TypeError):
        return None
