"""The people's rights over their data in the web UI: "Mon compte" (what the platform knows of me, and the
download of all of it), an administrator's download of a user's data, and the page "Conservation des
données" (each kind's retention period and the last run of the retention job)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from socle.api.routers.exports import archive_response
from socle.api.strict import StrictRoute
from socle.compliance.retention import KINDS
from socle.db.integers import Id
from socle.errors import SocleError
from socle.ui.security import SignedIn, platform
from socle.ui.web import error_page, french, page, status_of

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=StrictRoute)
KIND_LABELS = {"conversations": "Conversations (depuis leur dernier message)",
               "usage": "Consommation détaillée (une ligne par appel)",
               "documents": "Documents déposés", "feedback": "Jeux d'avis usagers et leurs analyses",
               "audit": "Journal d'audit", "sessions": "Sessions du site (après leur expiration)"}
assert set(KIND_LABELS) == set(KINDS)


@router.get("/compte")
async def account_page(request: Request, visitor: SignedIn) -> Response:
    try:
        user = await platform(request).identity.get_user(visitor.principal, visitor.principal.user_id)
    except SocleError as exc:
        return error_page(request, visitor, status_of(exc), french(exc))
    return page(request, "compte.html", visitor, title="Mon compte", user=user,
                periods=platform(request).retention.periods, labels=KIND_LABELS)


@router.get("/compte/donnees")
async def my_data(request: Request, visitor: SignedIn) -> Response:
    try:
        return await archive_response(platform(request), visitor.principal, visitor.principal.user_id)
    except SocleError as exc:
        return error_page(request, visitor, status_of(exc), french(exc))


@router.get("/admin/utilisateurs/{user_id}/donnees")
async def user_data(user_id: Id, request: Request, visitor: SignedIn) -> Response:
    try:
        return await archive_response(platform(request), visitor.principal, user_id)
    except SocleError as exc:
        return error_page(request, visitor, status_of(exc), french(exc))


@router.get("/admin/conservation")
async def retention_page(request: Request, visitor: SignedIn) -> Response:
    try:
        overview = await platform(request).retention.overview(visitor.principal)
    except SocleError as exc:
        return error_page(request, visitor, status_of(exc), french(exc))
    return page(request, "admin_conservation.html", visitor, title="Conservation des données", overview=overview,
                kinds=KINDS, labels=KIND_LABELS)
