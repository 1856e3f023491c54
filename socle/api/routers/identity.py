"""Administration of identity: ``/v1/users``, ``/v1/groups``, ``/v1/roles``, ``/v1/keys``, ``/v1/me``.

Permission checks live in the identity service; these handlers only translate HTTP to calls.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from socle.api.deps import Caller, Identity, platform
from socle.api.schemas import (
    GroupCreate,
    GroupOut,
    KeyCreate,
    KeyCreated,
    KeyOut,
    ListOf,
    RoleCreate,
    RoleOut,
    RoleUpdate,
    UserCreate,
    UserOut,
    UserUpdate,
    unix_time,
)
from socle.api.strict import StrictRoute
from socle.db.integers import Id, Offset
from socle.db.models import ApiKey, Group, User
from socle.errors import NotFound
from socle.identity.keys import PREFIX
from socle.identity.permissions import Permission, Principal
from socle.identity.service import IdentityService

router = APIRouter(prefix="/v1", tags=["identity"], route_class=StrictRoute)


def _user(user: User) -> UserOut:
    return UserOut(id=user.id, email=user.email, name=user.name, role=user.role.name,
                   groups=sorted(g.name for g in user.groups), is_active=user.is_active, created_at=user.created_at)


def _group(group: Group) -> GroupOut:
    return GroupOut(id=group.id, name=group.name, description=group.description,
                    members=sorted(u.id for u in group.members), created_at=group.created_at)


def _key(key: ApiKey) -> KeyOut:
    return KeyOut(id=key.id, name=key.name, prefix=f"{PREFIX}{key.public_id}", user_id=key.user_id,
                  created_at=key.created_at, expires_at=key.expires_at, revoked_at=key.revoked_at)


@router.get("/me", response_model=UserOut, summary="The caller's own account")
async def me(caller: Caller, identity: Identity) -> UserOut:
    return _user(await identity.get_user(caller, caller.user_id))


# ---- the Albert API's account routes: the caller's own account, role and keys, in its shapes -------------

# The Albert API's permissions, by the platform's permission that grants them.
_ALBERT_PERMISSIONS: dict[str, tuple[str, ...]] = {
    Permission.ROLES_ADMIN: ("create_role", "read_role", "update_role", "delete_role"),
    Permission.USERS_ADMIN: ("create_user", "read_user", "update_user", "delete_user"),
    Permission.COLLECTIONS_PUBLISH: ("create_public_collection",),
    Permission.METRICS_READ: ("read_metric",),
}
# The Albert API's limit types, by the platform's quota limit.
_ALBERT_LIMITS = {"requests_per_minute": "rpm", "requests_per_day": "rpd", "tokens_per_minute": "tpm"}




def _albert_permissions(caller: Principal) -> list[str]:
    return sorted({albert for ours, names in _ALBERT_PERMISSIONS.items() if caller.can(ours) for albert in names})


async def _albert_limits(caller: Principal, request: Request) -> list[dict[str, Any]]:
    """The quotas binding the caller (for their key), as the Albert API's limits; a model of ``*``: every
    model together. Budgets have no Albert equivalent: ``/v1/quotas/me`` and the usage page show them."""
    p = platform(request)
    lines = await p.quotas.allowance(caller, p.inference.quotas.store,
                                     key_ids=[caller.key_id] if caller.key_id is not None else [])
    return [{"model": line.model or "*", "type": _ALBERT_LIMITS[line.limit_name], "value": int(line.limit)}
            for line in lines if line.limit_name in _ALBERT_LIMITS]


def _albert_user(user: User) -> dict[str, Any]:
    return {"object": "user", "id": user.id, "name": user.name or user.email, "email": user.email,
            "role": user.role_id, "budget": None, "expires_at": None,
            "created_at": unix_time(user.created_at), "updated_at": unix_time(user.created_at)}


def _albert_token(key: ApiKey) -> dict[str, Any]:
    return {"object": "token", "id": key.id, "name": key.name, "token": f"{PREFIX}{key.public_id}...",
            "user": key.user_id, "expires_at": unix_time(key.expires_at),
            "created_at": unix_time(key.created_at)}


@router.get("/users/me", summary="The caller's account, in the Albert API's shape")
async def albert_me(caller: Caller, identity: Identity) -> dict[str, Any]:
    return _albert_user(await identity.get_user(caller, caller.user_id))


@router.get("/roles/me", summary="The caller's role, in the Albert API's shape (its permissions and limits)")
async def albert_role(caller: Caller, identity: Identity, request: Request) -> dict[str, Any]:
    user = await identity.get_user(caller, caller.user_id)
    return {"object": "role", "id": user.role.id, "name": user.role.name, "permissions": _albert_permissions(caller),
            "platform_permissions": sorted(caller.permissions), "limits": await _albert_limits(caller, request),
            "created_at": unix_time(user.role.created_at), "updated_at": unix_time(user.role.created_at)}


@router.get("/me/info", summary="The caller's account with its permissions and limits, in the Albert API's shape")
async def albert_info(caller: Caller, identity: Identity, request: Request) -> dict[str, Any]:
    user = await identity.get_user(caller, caller.user_id)
    return {**_albert_user(user), "object": "userInfo", "permissions": _albert_permissions(caller),
            "platform_permissions": sorted(caller.permissions), "limits": await _albert_limits(caller, request),
            "groups": sorted(group.name for group in user.groups)}


class TokenCreate(BaseModel):
    """The Albert API's token request: ``expires_at`` in unix time."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    user: Id | None = Field(default=None, description="Admins only: create the key for this user")
    expires_at: int | None = Field(default=None, ge=0, le=253402300799, description="Unix time, in seconds")


@router.get("/tokens", response_model=ListOf, summary="The caller's live keys, in the Albert API's shape")
async def albert_tokens(caller: Caller, identity: Identity, limit: int = Query(10, ge=1, le=1000),
                        offset: Offset = 0, order_by: Literal["id", "name", "created_at"] = "id",
                        order_direction: Literal["asc", "desc"] = "asc") -> ListOf:
    live = [key for key in await identity.list_keys(caller, user_id=caller.user_id)
            if key.user_id == caller.user_id and key.revoked_at is None]
    live.sort(key=lambda key: (getattr(key, order_by), key.id), reverse=order_direction == "desc")
    return ListOf(data=[_albert_token(key) for key in live[offset:offset + limit]])


@router.post("/tokens", status_code=status.HTTP_201_CREATED, summary="Create a key (the Albert API's way); the "
             "full key is in this answer only")
async def albert_create_token(body: TokenCreate, caller: Caller, identity: Identity) -> dict[str, Any]:
    expires = None if body.expires_at is None else datetime.fromtimestamp(body.expires_at, UTC)
    issued = await identity.create_key(caller, name=body.name, user_id=body.user, expires_at=expires)
    return {"id": issued.key.id, "token": issued.secret}


async def _own_live_key(caller: Principal, identity: IdentityService, key_id: int) -> ApiKey:
    for key in await identity.list_keys(caller, user_id=caller.user_id):
        if key.id == key_id and key.user_id == caller.user_id and key.revoked_at is None:
            return key
    raise NotFound(f"Token {key_id} not found.", param="key_id")


@router.get("/tokens/{key_id}", summary="One of the caller's live keys, in the Albert API's shape")
async def albert_token(key_id: Id, caller: Caller, identity: Identity) -> dict[str, Any]:
    return _albert_token(await _own_live_key(caller, identity, key_id))


@router.delete("/tokens/{key_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke one of one's keys")
async def albert_delete_token(key_id: Id, caller: Caller, identity: Identity) -> None:
    await identity.revoke_key(caller, (await _own_live_key(caller, identity, key_id)).id)


# ---- users -----------------------------------------------------------------------------------------

@router.get("/users", response_model=ListOf)
async def list_users(caller: Caller, identity: Identity, limit: int = Query(100, ge=1, le=1000),
                     offset: Offset = 0) -> ListOf:
    return ListOf(data=[_user(u) for u in await identity.list_users(caller, limit=limit, offset=offset)])


@router.post("/users", response_model=UserOut, status_code=status.HTTP_201_CREATED)
async def create_user(body: UserCreate, caller: Caller, identity: Identity) -> UserOut:
    return _user(await identity.create_user(caller, **body.model_dump()))


@router.get("/users/{user_id}", response_model=UserOut)
async def get_user(user_id: Id, caller: Caller, identity: Identity) -> UserOut:
    return _user(await identity.get_user(caller, user_id))


@router.patch("/users/{user_id}", response_model=UserOut)
async def update_user(user_id: Id, body: UserUpdate, caller: Caller, identity: Identity) -> UserOut:
    return _user(await identity.update_user(caller, user_id, **body.model_dump(exclude_unset=True)))


@router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_user(user_id: Id, request: Request, caller: Caller) -> None:
    """Erase the user and everything about them (``socle.compliance.erasure``)."""
    await platform(request).erasure.erase_user(caller, user_id)


# ---- groups ----------------------------------------------------------------------------------------

@router.get("/groups", response_model=ListOf)
async def list_groups(caller: Caller, identity: Identity) -> ListOf:
    return ListOf(data=[_group(g) for g in await identity.list_groups(caller)])


@router.post("/groups", response_model=GroupOut, status_code=status.HTTP_201_CREATED)
async def create_group(body: GroupCreate, caller: Caller, identity: Identity) -> GroupOut:
    return _group(await identity.create_group(caller, **body.model_dump()))


@router.put("/groups/{group_id}/members/{user_id}", response_model=GroupOut)
async def add_member(group_id: Id, user_id: Id, caller: Caller, identity: Identity) -> GroupOut:
    return _group(await identity.set_membership(caller, group_id, user_id, member=True))


@router.delete("/groups/{group_id}/members/{user_id}", response_model=GroupOut)
async def remove_member(group_id: Id, user_id: Id, caller: Caller, identity: Identity) -> GroupOut:
    return _group(await identity.set_membership(caller, group_id, user_id, member=False))


@router.delete("/groups/{group_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_group(group_id: Id, caller: Caller, identity: Identity) -> None:
    await identity.delete_group(caller, group_id)


# ---- roles -----------------------------------------------------------------------------------------

@router.get("/roles", response_model=ListOf)
async def list_roles(caller: Caller, identity: Identity) -> ListOf:
    return ListOf(data=[RoleOut.model_validate(r) for r in await identity.list_roles(caller)])


@router.post("/roles", response_model=RoleOut, status_code=status.HTTP_201_CREATED)
async def create_role(body: RoleCreate, caller: Caller, identity: Identity) -> RoleOut:
    return RoleOut.model_validate(await identity.create_role(caller, **body.model_dump()))


@router.patch("/roles/{role_id}", response_model=RoleOut)
async def update_role(role_id: Id, body: RoleUpdate, caller: Caller, identity: Identity) -> RoleOut:
    return RoleOut.model_validate(await identity.update_role(caller, role_id, **body.model_dump(exclude_unset=True)))


@router.delete("/roles/{role_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_role(role_id: Id, caller: Caller, identity: Identity) -> None:
    await identity.delete_role(caller, role_id)


# ---- API keys --------------------------------------------------------------------------------------

@router.get("/keys", response_model=ListOf, summary="The caller's keys (admins: anyone's, by user_id)")
async def list_keys(caller: Caller, identity: Identity, user_id: Id | None = None) -> ListOf:
    return ListOf(data=[_key(k) for k in await identity.list_keys(caller, user_id=user_id)])


@router.post("/keys", response_model=KeyCreated, status_code=status.HTTP_201_CREATED,
             summary="Create a key; the full key is in this answer only")
async def create_key(body: KeyCreate, caller: Caller, identity: Identity) -> KeyCreated:
    issued = await identity.create_key(caller, **body.model_dump())
    return KeyCreated(**_key(issued.key).model_dump(), key=issued.secret)


@router.delete("/keys/{key_id}", response_model=KeyOut, summary="Revoke a key")
async def revoke_key(key_id: Id, caller: Caller, identity: Identity) -> KeyOut:
    return _key(await identity.revoke_key(caller, key_id))
