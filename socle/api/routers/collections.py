"""``/v1/collections`` (Albert-API-compatible): create, list, read, change and delete collections.

Albert API clients send ``model`` (the embeddings model of the collection): every collection here is embedded
by the platform's embeddings model, so ``model`` is honoured when it names that one (or an alias of it) and
refused by name otherwise. Collections carry the Albert API's ``owner`` and unix-time ``created_at`` /
``updated_at``.
"""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from socle.api.deps import Caller, Collections, Documents, Inference, Search
from socle.api.schemas import ListOf
from socle.api.strict import StrictRoute
from socle.db.integers import Id, Offset
from socle.db.models import Collection
from socle.errors import InvalidRequest
from socle.identity.permissions import Principal
from socle.inference.service import InferenceService
from socle.rag.search import SearchService

router = APIRouter(prefix="/v1", tags=["collections"], route_class=StrictRoute)

Visibility = Literal["private", "group", "public"]


class CollectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default="", max_length=2000)
    visibility: Visibility = "private"
    group_id: Id | None = Field(default=None, description="With visibility 'group': one of your groups")
    model: str | None = Field(default=None, max_length=256, description="The Albert API's: the embeddings model; "
                              "only the platform's own (see /v1/models, type text-embeddings-inference)")


class CollectionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    visibility: Visibility | None = None
    group_id: Id | None = None


class CollectionOut(BaseModel):
    id: int
    object: Literal["collection"] = "collection"
    name: str
    description: str
    visibility: Visibility
    group_id: int | None
    owner: str = Field(description="The owner's name (the Albert API's)")
    owner_id: int
    documents: int
    chunks: int
    model: str | None = Field(description="The embeddings model of its chunks")
    created_at: int = Field(description="Unix time, in seconds")
    updated_at: int = Field(description="Unix time, in seconds")


def _out(collection: Collection, owners: dict[int, str], model: str | None) -> CollectionOut:
    return CollectionOut(id=collection.id, name=collection.name, description=collection.description,
                         visibility=collection.visibility, group_id=collection.group_id,  # type: ignore[arg-type]
                         owner=owners.get(collection.owner_id, f"user-{collection.owner_id}"),
                         owner_id=collection.owner_id, documents=collection.documents, chunks=collection.chunks,
                         model=model, created_at=int(collection.created_at.timestamp()),
                         updated_at=int(collection.updated_at.timestamp()))


async def _one(collections: Collections, collection: Collection, model: str | None) -> CollectionOut:
    return _out(collection, await collections.owners([collection]), model)


def _check_model(caller: Principal, model: str, inference: InferenceService, searcher: SearchService) -> None:
    served = inference.get_model(caller, model)  # an unknown model: 404, as everywhere
    if served.config.id != searcher.embedding_model:
        raise InvalidRequest(f"Collections are embedded with the platform's embeddings model "
                             f"({searcher.embedding_model or 'none configured'}), not {model}: leave model out, "
                             "or name that one.", param="model")


@router.post("/collections", response_model=CollectionOut, status_code=status.HTTP_201_CREATED)
async def create_collection(body: CollectionCreate, caller: Caller, collections: Collections, inference: Inference,
                            searcher: Search) -> CollectionOut:
    if body.model is not None:
        _check_model(caller, body.model, inference, searcher)
    fields = body.model_dump(exclude={"model"})
    fields["description"] = fields["description"] or ""
    return await _one(collections, await collections.create(caller, **fields), searcher.embedding_model)


@router.get("/collections", response_model=ListOf, summary="The collections the caller may read")
async def list_collections(caller: Caller, collections: Collections, searcher: Search,
                           limit: int = Query(100, ge=1, le=1000), offset: Offset = 0) -> ListOf:
    found = await collections.list(caller, limit=limit, offset=offset)
    owners = await collections.owners(found)
    return ListOf(data=[_out(c, owners, searcher.embedding_model) for c in found])


@router.get("/collections/{collection_id}", response_model=CollectionOut)
async def get_collection(collection_id: Id, caller: Caller, collections: Collections,
                         searcher: Search) -> CollectionOut:
    return await _one(collections, await collections.get(caller, collection_id), searcher.embedding_model)


@router.patch("/collections/{collection_id}", response_model=CollectionOut,
              summary="Change a collection; answers 200 with it (the Albert API answered 204, without a body)")
async def update_collection(collection_id: Id, body: CollectionUpdate, caller: Caller, collections: Collections,
                            searcher: Search) -> CollectionOut:
    changes = body.model_dump(exclude_unset=True)
    collection = await collections.update(caller, collection_id, **changes)
    return await _one(collections, collection, searcher.embedding_model)


@router.delete("/collections/{collection_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_collection(collection_id: Id, caller: Caller, documents: Documents) -> None:
    await documents.delete_collection(caller, collection_id)  # with its documents' files
