"""My API keys: create (the key is shown once, on the answer to the form, never in a URL), list, revoke."""
from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from socle.api.strict import StrictRoute
from socle.db.integers import Id
from socle.db.models import utcnow
from socle.errors import SocleError
from socle.identity.keys import PREFIX
from socle.ui.security import SignedIn, Visitor, platform
from socle.ui.web import inline, page, redirect

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=StrictRoute)
EXPIRIES = {"": "Jamais", "30": "Dans 30 jours", "90": "Dans 90 jours", "365": "Dans un an"}


@router.get("/cles")
async def keys_page(request: Request, visitor: SignedIn) -> Response:
    return await _render(request, visitor)


@router.post("/cles")
async def create_key(request: Request, visitor: SignedIn, name: Annotated[str, Form(max_length=200)] = "",
                     expires: Annotated[str, Form()] = "") -> Response:
    if expires not in EXPIRIES:
        return await _render(request, visitor, status_code=400, error="Choisissez une durée de validité proposée.")
    expires_at = utcnow() + timedelta(days=int(expires)) if expires else None
    try:
        issued = await platform(request).identity.create_key(visitor.principal, name=name.strip(),
                                                             expires_at=expires_at)
    except SocleError as exc:
        return await _render(request, visitor, **inline(exc))
    return await _render(request, visitor, status_code=201, secret=issued.secret, created=issued.key.name)


@router.post("/cles/{key_id}/revoquer")
async def revoke_key(key_id: Id, request: Request, visitor: SignedIn) -> Response:
    await platform(request).identity.revoke_key(visitor.principal, key_id)
    return redirect("/ui/cles?ok=cle-revoquee")


async def _render(request: Request, visitor: Visitor, *, status_code: int = 200, **context: object) -> Response:
    keys = await platform(request).identity.list_keys(visitor.principal, user_id=visitor.principal.user_id)
    return page(request, "cles.html", visitor, title="Mes clés d'API", status_code=status_code, keys=keys,
                prefix=PREFIX, expiries=EXPIRIES, now=utcnow(), **context)
