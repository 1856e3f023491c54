"""Administration of roles: each role's permissions, chosen among the known ones; create, edit, delete.

The identity service decides (``roles:admin``), keeps the admin role's ``*`` and the built-in roles, and
refuses to delete a role still given to someone; this module shows its answers in French.
"""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from socle.api.strict import StrictRoute
from socle.db.integers import Id
from socle.errors import SocleError
from socle.identity.permissions import Permission
from socle.ui.security import SignedIn, Visitor, platform
from socle.ui.web import error_page, french, page, redirect, status_of

router = APIRouter(prefix="/ui/admin/roles", include_in_schema=False, route_class=StrictRoute)
Permissions = Annotated[list[str] | None, Form()]
Description = Annotated[str, Form(max_length=500)]

_LABELS = {
    "*": "Toutes les permissions, y compris celles à venir (administrateur)",
    "models:read": "Voir la liste des modèles",
    "models:use": "Utiliser les modèles (chat, complétions, embeddings)",
    "keys:own": "Créer et révoquer ses propres clés d'API",
    "keys:all": "Gérer les clés d'API de tout le monde",
    "users:admin": "Administrer les comptes et les groupes",
    "roles:admin": "Administrer les rôles",
    "collections:own": "Créer des collections de documents et les alimenter",
    "collections:publish": "Publier une collection pour tous les utilisateurs",
    "quotas:admin": "Administrer les quotas",
    "metrics:read": "Lire l'état de santé et les métriques de la plateforme",
    "usage:read_all": "Lire la consommation de tout le monde (tableau de bord)",
    "feedback:use": "Analyser les avis des usagers",
    "audit:read": "Lire et exporter le journal d'audit et le registre des traitements",
}


def permission_choices() -> list[tuple[str, str]]:
    """Every permission the platform knows, with what it allows in French (its technical name otherwise)."""
    return [(p.value, _LABELS.get(p.value, p.value)) for p in Permission]


@router.get("")
async def roles_page(request: Request, visitor: SignedIn) -> Response:
    return await _roles(request, visitor)


@router.post("")
async def create_role(request: Request, visitor: SignedIn, name: Annotated[str, Form(max_length=64)] = "",
                      description: Description = "", permissions: Permissions = None) -> Response:
    try:
        await platform(request).identity.create_role(visitor.principal, name=name.strip(),
                                                     permissions=permissions or [], description=description.strip())
    except SocleError as exc:
        return await _roles(request, visitor, status_code=status_of(exc), error=french(exc),
                            form={"name": name, "description": description, "permissions": permissions or []})
    return redirect("/ui/admin/roles?ok=role-cree")


@router.get("/{role_id}")
async def role_page(role_id: Id, request: Request, visitor: SignedIn) -> Response:
    return await _role(request, visitor, role_id)


@router.post("/{role_id}")
async def update_role(role_id: Id, request: Request, visitor: SignedIn, description: Description = "",
                      permissions: Permissions = None) -> Response:
    try:
        await platform(request).identity.update_role(visitor.principal, role_id, permissions=permissions or [],
                                                     description=description.strip())
    except SocleError as exc:
        return await _role(request, visitor, role_id, status_code=status_of(exc), error=french(exc))
    return redirect(f"/ui/admin/roles/{role_id}?ok=role-modifie")


@router.post("/{role_id}/supprimer")
async def delete_role(role_id: Id, request: Request, visitor: SignedIn) -> Response:
    try:
        await platform(request).identity.delete_role(visitor.principal, role_id)
    except SocleError as exc:
        return await _roles(request, visitor, status_code=status_of(exc), error=french(exc))
    return redirect("/ui/admin/roles?ok=role-supprime")


async def _roles(request: Request, visitor: Visitor, *, status_code: int = 200, **context: Any) -> Response:
    identity = platform(request).identity
    try:
        holders = await identity.role_holders(visitor.principal)  # roles:admin, or refused here
        roles = await identity.list_roles(visitor.principal)
    except SocleError as exc:
        return error_page(request, visitor, status_of(exc), french(exc))
    return page(request, "admin_roles.html", visitor, title="Rôles", status_code=status_code, roles=roles,
                holders=holders, choices=permission_choices(), labels=dict(permission_choices()), **context)


async def _role(request: Request, visitor: Visitor, role_id: int, *, status_code: int = 200,
                **context: Any) -> Response:
    identity = platform(request).identity
    try:
        role = await identity.get_role(visitor.principal, role_id)
        holders = (await identity.role_holders(visitor.principal)).get(role_id, 0)
    except SocleError as exc:
        return error_page(request, visitor, status_of(exc), french(exc))
    return page(request, "admin_role.html", visitor, title=f"Rôle {role.name}", status_code=status_code, role=role,
                holders=holders, choices=permission_choices(), **context)
