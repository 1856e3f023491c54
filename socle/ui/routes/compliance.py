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
from socle.ui.security import SignedIn, platform
from socle.ui.web import page

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=StrictRoute)
KIND_LABELS = {"conversations": "Conversations (depuis leur dernier message)",
               "usage": "Consommation détaillée (une ligne par appel)",
               "documents": "Documents déposés",
               "audit": "Journal d'audit", "sessions": "Sessions du site (après leur expiration)"}
assert set(KIND_LABELS) == set(KINDS)


def _labels(request: Request) -> dict[str, str]:
    """Each kind of data in French: the platform's, then the installed apps'."""
    return {**KIND_LABELS, **{data.kind: data.label for data in platform(request).personal_data}}


@router.get("/compte")
async def account_page(request: Request, visitor: SignedIn) -> Response:
    user = await platform(request).identity.get_user(visitor.principal, visitor.principal.user_id)
    return page(request, "compte.html", visitor, title="Mon compte", user=user,
                has_password=await platform(request).identity.has_password(visitor.principal),
                periods=await platform(request).retention.current(), labels=_labels(request))


@router.get("/compte/donnees")
async def my_data(request: Request, visitor: SignedIn) -> Response:
    return await archive_response(platform(request), visitor.principal, visitor.principal.user_id)


@router.get("/admin/utilisateurs/{user_id}/donnees")
async def user_data(user_id: Id, request: Request, visitor: SignedIn) -> Response:
    return await archive_response(platform(request), visitor.principal, user_id)


@router.get("/admin/conservation")
async def retention_page(request: Request, visitor: SignedIn) -> Response:
    overview = await platform(request).retention.overview(visitor.principal)
    return page(request, "admin_conservation.html", visitor, title="Conservation des données", overview=overview,
                kinds=overview.periods.kinds, labels=_labels(request))
