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
from socle.ui.security import SignedIn, Visitor, platform
from socle.ui.web import inline, page, redirect

router = APIRouter(prefix="/ui/admin/roles", include_in_schema=False, route_class=StrictRoute)
Permissions = Annotated[list[str] | None, Form()]
Description = Annotated[str, Form(max_length=500)]


def permission_choices(request: Request) -> list[tuple[str, str]]:
    """Every permission a role may hold (the platform's and the installed apps'), with what it allows in French."""
    return list(platform(request).identity.permissions.labels.items())


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
        return await _roles(request, visitor, **inline(exc),
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
        return await _role(request, visitor, role_id, **inline(exc))
    return redirect(f"/ui/admin/roles/{role_id}?ok=role-modifie")


@router.post("/{role_id}/supprimer")
async def delete_role(role_id: Id, request: Request, visitor: SignedIn) -> Response:
    try:
        await platform(request).identity.delete_role(visitor.principal, role_id)
    except SocleError as exc:
        return await _roles(request, visitor, **inline(exc))
    return redirect("/ui/admin/roles?ok=role-supprime")


async def _roles(request: Request, visitor: Visitor, *, status_code: int = 200, **context: Any) -> Response:
    identity = platform(request).identity
    holders = await identity.role_holders(visitor.principal)  # roles:admin, or refused here
    roles = await identity.list_roles(visitor.principal)
    return page(request, "admin_roles.html", visitor, title="Rôles", status_code=status_code, roles=roles,
                holders=holders, choices=permission_choices(request), labels=dict(permission_choices(request)),
                **context)


async def _role(request: Request, visitor: Visitor, role_id: int, *, status_code: int = 200,
                **context: Any) -> Response:
    identity = platform(request).identity
    role = await identity.get_role(visitor.principal, role_id)
    holders = (await identity.role_holders(visitor.principal)).get(role_id, 0)
    return page(request, "admin_role.html", visitor, title=f"Rôle {role.name}", status_code=status_code, role=role,
                holders=holders, choices=permission_choices(request), **context)
