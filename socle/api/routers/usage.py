"""``/v1/usage``: one's own usage (admins: anyone's), as rows or as sums by day, model, user..."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict

from socle.api.deps import Caller, Usage
from socle.api.strict import StrictRoute
from socle.db.integers import Id, Offset
from socle.errors import InvalidRequest
from socle.usage.service import GroupBy, UsageFilter

router = APIRouter(prefix="/v1", tags=["usage"], route_class=StrictRoute)
_GROUPS = set(GroupBy.__args__)  # type: ignore[attr-defined]


class UsageRow(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    created_at: datetime
    user_id: int
    key_id: int | None
    model: str
    backend: str | None
    endpoint: str
    status: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    ttft_ms: float | None
    attempts: int
    cost: float
    energy_kwh: float
    co2_kg: float
    request_id: str | None = None  # the call's X-Request-Id: finds its lines in the logs


class UsageFilters(BaseModel):
    user_id: Id | None = None
    key_id: Id | None = None
    model: str | None = None
    status: str | None = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None

    def domain(self) -> UsageFilter:
        return UsageFilter(**self.model_dump())


Filters = Annotated[UsageFilters, Query()]


@router.get("/usage", summary="Usage rows, newest first")
async def usage_rows(caller: Caller, usage: Usage, filters: Filters, limit: int = Query(100, ge=1, le=10_000),
                     offset: Offset = 0) -> dict[str, Any]:
    rows = await usage.records(caller, filters.domain(), limit=limit, offset=offset)
    return {"object": "list", "currency": usage.currency, "data": [UsageRow.model_validate(r) for r in rows]}


@router.get("/usage/summary", summary="Sums per day, model, user, key, endpoint or status")
async def usage_summary(caller: Caller, usage: Usage, filters: Filters,
                        group_by: str = Query("", description="Comma-separated: day, model, user, key, endpoint, "
                                                               "status")) -> dict[str, Any]:
    groups = [g.strip() for g in group_by.split(",") if g.strip()]
    unknown = set(groups) - _GROUPS
    if unknown:
        raise InvalidRequest(f"group_by accepts {', '.join(sorted(_GROUPS))}; not {', '.join(sorted(unknown))}.",
                             param="group_by")
    data = await usage.totals(caller, filters.domain(), groups)  # type: ignore[arg-type]
    return {"object": "list", "currency": usage.currency, "data": data}
