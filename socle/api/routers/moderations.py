"""``/v1/moderations``, served only by a model of type ``moderation`` in the catalogue (e.g. a Llama Guard served by
vLLM behind an OpenAI-compatible moderation endpoint): without one, every call is a 404 that says so, never an
answer that would pass for a check."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from socle.api.deps import Caller, Inference
from socle.api.strict import StrictRoute
from socle.endpoints import Endpoint

router = APIRouter(prefix="/v1", tags=["moderations"], route_class=StrictRoute)


class ModerationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str | list[str] | list[dict[str, Any]] = Field(description="Text, texts, or the OpenAI API's "
                                                          "multimodal items")
    model: str | None = Field(default=None, min_length=1, max_length=256,
                              description="Default: the first moderation model of the catalogue")


@router.post("/moderations", summary="Classify text as potentially harmful (only where a moderation model is "
             "configured; else 404 model_not_found)")
async def moderations(request: ModerationRequest, caller: Caller, inference: Inference) -> JSONResponse:
    name = inference.model_for(caller, "moderation", request.model)
    body = {**request.model_dump(exclude_unset=True), "model": name}
    return JSONResponse(await inference.call(caller, Endpoint.MODERATIONS, body))
