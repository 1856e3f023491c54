"""``/v1/collections`` (Albert-API-compatible): create, list, read, change and delete collections."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from socle.api.deps import Caller, Collections, Documents
from socle.api.schemas import ListOf
from socle.api.strict import StrictRoute
from socle.db.integers import Id, Offset

router = APIRouter(prefix="/v1", tags=["collections"], route_class=StrictRoute)

Visibility = Literal["private", "group", "public"]


class CollectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    visibility: Visibility = "private"
    group_id: Id | None = Field(default=None, description="With visibility 'group': one of your groups")


class CollectionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    visibility: Visibility | None = None
    group_id: Id | None = None


class CollectionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    object: Literal["collection"] = "collection"
    name: str
    description: str
    visibility: Visibility
    group_id: int | None
    owner_id: int
    documents: int
    chunks: int
    created_at: datetime
    updated_at: datetime


@router.post("/collections", response_model=CollectionOut, status_code=status.HTTP_201_CREATED)
async def create_collection(body: CollectionCreate, caller: Caller, collections: Collections) -> CollectionOut:
    return CollectionOut.model_validate(await collections.create(caller, **body.model_dump()))


@router.get("/collections", response_model=ListOf, summary="The collections the caller may read")
async def list_collections(caller: Caller, collections: Collections, limit: int = Query(100, ge=1, le=1000),
                           offset: Offset = 0) -> ListOf:
    return ListOf(data=[CollectionOut.model_validate(c)
                        for c in await collections.list(caller, limit=limit, offset=offset)])


@router.get("/collections/{collection_id}", response_model=CollectionOut)
async def get_collection(collection_id: Id, caller: Caller, collections: Collections) -> CollectionOut:
    return CollectionOut.model_validate(await collections.get(caller, collection_id))


@router.patch("/collections/{collection_id}", response_model=CollectionOut)
async def update_collection(collection_id: Id, body: CollectionUpdate, caller: Caller,
                            collections: Collections) -> CollectionOut:
    changes = body.model_dump(exclude_unset=True)
    return CollectionOut.model_validate(await collections.update(caller, collection_id, **changes))


@router.delete("/collections/{collection_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_collection(collection_id: Id, caller: Caller, documents: Documents) -> None:
    await documents.delete_collection(caller, collection_id)  # with its documents' files
