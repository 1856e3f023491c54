"""``/v1/models``: the models the caller may use."""
from __future__ import annotations

from fastapi import APIRouter

from socle.api.deps import Caller, Inference
from socle.api.schemas import ListOf, ModelOut
from socle.api.strict import StrictRoute
from socle.endpoints import ALBERT_TYPES
from socle.inference.registry import ServedModel

router = APIRouter(prefix="/v1", tags=["models"], route_class=StrictRoute)


def model_out(served: ServedModel) -> ModelOut:
    config = served.config
    return ModelOut(id=config.id, owned_by=config.owned_by, type=ALBERT_TYPES.get(config.type, config.type),
                    kind=config.type, aliases=config.aliases,
                    max_context_length=config.max_context_length, card=config.model_card,
                    available=served.available)


@router.get("/models", response_model=ListOf)
async def list_models(caller: Caller, inference: Inference) -> ListOf:
    return ListOf(data=[model_out(m) for m in inference.list_models(caller)])


@router.get("/models/{model_id:path}", response_model=ModelOut)
async def get_model(model_id: str, caller: Caller, inference: Inference) -> ModelOut:
    return model_out(inference.get_model(caller, model_id))
