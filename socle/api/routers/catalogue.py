"""``/v1/catalogue``: the catalogue of models as the administrators change it (``models:admin``), the same service
as the web UI's pages. A change is served by every process within ``SOCLE_CATALOGUE_REFRESH_S``."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from socle.api.deps import Caller, platform
from socle.api.schemas import ListOf
from socle.api.strict import StrictRoute
from socle.db.integers import Id
from socle.inference.cards import ModelCard
from socle.inference.catalogue_store import ModelEntry, Probe

router = APIRouter(prefix="/v1/catalogue", tags=["catalogue"], route_class=StrictRoute)


class CatalogueBackendOut(BaseModel):
    id: int
    name: str = Field(description="The backend's public label")
    type: str
    location: str = Field(description="Its address or model file")
    has_key: bool = Field(description="A key entered from the browser or this API is stored (encrypted; never shown)")


class CatalogueModelOut(BaseModel):
    id: int = Field(description="The catalogue entry's number (the model's id is `model`)")
    object: Literal["catalogue.model"] = "catalogue.model"
    model: str
    type: str
    origin: Literal["yaml", "ui"] = Field(description="yaml: declared in SOCLE_CONFIG (changed there); ui: added "
                                          "from the browser or this API")
    enabled: bool
    settings: dict[str, Any] = Field(description="The model's entry as the catalogue file writes it, less its "
                                     "backends and card")
    card: ModelCard | None
    backends: list[CatalogueBackendOut]
    updated_at: datetime


class CatalogueModelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: dict[str, Any] = Field(description="The model's entry as the catalogue file writes it (id, type, card, "
                                  "routing...), without backends")
    backend: dict[str, Any] = Field(description="Its first backend, as the catalogue file writes one")
    api_key: str = Field(default="", max_length=4096, description="The backend's key, stored encrypted")


class CatalogueModelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: dict[str, Any] | None = Field(default=None, description="The model's new entry (origin ui only), "
                                         "without backends: they are kept")
    enabled: bool | None = None


class ProbeOut(BaseModel):
    backend: str
    ok: bool
    latency_ms: int
    answer: str
    reason: str


def _out(entry: ModelEntry) -> CatalogueModelOut:
    config = entry.config
    return CatalogueModelOut(
        id=entry.id, model=config.id, type=config.type, origin=entry.origin,  # type: ignore[arg-type]
        enabled=entry.enabled, card=config.card, updated_at=entry.updated_at,
        settings=config.model_dump(mode="json", exclude={"id", "backends", "card"}, exclude_defaults=True),
        backends=[CatalogueBackendOut(id=b.id, name=b.label, type=b.kind, location=b.location, has_key=b.has_key)
                  for b in entry.backends])


@router.get("/models", response_model=ListOf, summary="Every model of the catalogue, in service or not")
async def list_catalogue(caller: Caller, request: Request) -> ListOf:
    return ListOf(data=[_out(entry) for entry in await platform(request).models.entries(caller)])


@router.post("/models", response_model=CatalogueModelOut, status_code=status.HTTP_201_CREATED)
async def create_catalogue_model(body: CatalogueModelCreate, caller: Caller, request: Request) -> CatalogueModelOut:
    entry = await platform(request).models.create(caller, body.model, body.backend, api_key=body.api_key)
    return _out(entry)


@router.get("/models/{entry_id}", response_model=CatalogueModelOut)
async def get_catalogue_model(entry_id: Id, caller: Caller, request: Request) -> CatalogueModelOut:
    return _out(await platform(request).models.entry(caller, entry_id))


@router.patch("/models/{entry_id}", response_model=CatalogueModelOut)
async def update_catalogue_model(entry_id: Id, body: CatalogueModelUpdate, caller: Caller,
                                 request: Request) -> CatalogueModelOut:
    models = platform(request).models
    entry = await models.entry(caller, entry_id)
    if body.model is not None:
        entry = await models.update(caller, entry_id, body.model)
    if body.enabled is not None:
        entry = await models.set_enabled(caller, entry_id, body.enabled)
    return _out(entry)


@router.delete("/models/{entry_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_catalogue_model(entry_id: Id, caller: Caller, request: Request) -> None:
    await platform(request).models.delete(caller, entry_id)


@router.post("/models/{entry_id}/test", response_model=list[ProbeOut],
             summary="Call each backend of the model once; what each answered, and how fast")
async def test_catalogue_model(entry_id: Id, caller: Caller, request: Request) -> list[ProbeOut]:
    probes: list[Probe] = await platform(request).models.test(caller, entry_id, platform(request).registry.running)
    return [ProbeOut(backend=p.backend, ok=p.ok, latency_ms=p.latency_ms, answer=p.answer, reason=p.reason)
            for p in probes]


@router.get("/export", response_class=PlainTextResponse, summary="The models in service as a catalogue file "
            "(YAML); keys entered from the browser are replaced by environment variables to set",
            responses={200: {"content": {"application/yaml": {}}}})
async def export_catalogue(caller: Caller, request: Request) -> PlainTextResponse:
    return PlainTextResponse(await platform(request).models.export_yaml(caller), media_type="application/yaml")
