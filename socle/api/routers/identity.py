"""Administration of identity: ``/v1/users``, ``/v1/groups``, ``/v1/roles``, ``/v1/keys``, ``/v1/me``.

Permission checks live in the identity service; these handlers only translate HTTP to calls.
"""
from __future__ import annotations

from fastapi import APIRouter, Query, Request, status

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
)
from socle.api.strict import StrictRoute
from socle.db.integers import Id, Offset
from socle.db.models import ApiKey, Group, User
from socle.identity.keys import PREFIX

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
