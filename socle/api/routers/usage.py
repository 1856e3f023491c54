"""``/v1/usage``: one's own usage (admins: anyone's), as rows or as sums by day, model, user..."""
from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict

from socle.api.deps import Caller, Usage
from socle.api.strict import StrictRoute
from socle.db.integers import MAX_INT32, Id, Offset
from socle.db.models import UsageRecord
from socle.errors import InvalidRequest
from socle.usage.service import GroupBy, RecordOrder, UsageFilter

router = APIRouter(prefix="/v1", tags=["usage"], route_class=StrictRoute)
_GROUPS = set(GroupBy.__args__)  # type: ignore[attr-defined]
MAX_UNIX = 253402300799  # 9999-12-31


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


def _albert_row(row: UsageRecord) -> dict[str, Any]:
    """A row with the Albert API's names beside the platform's (its ``status`` stays the platform's word)."""
    energy, carbon = row.energy_kwh, row.co2_kg
    return {**UsageRow.model_validate(row).model_dump(), "datetime": int(row.created_at.timestamp()),
            "duration": round(row.latency_ms),
            "time_to_first_token": None if row.ttft_ms is None else round(row.ttft_ms),
            "token_id": row.key_id, "request_model": row.model, "method": "POST",
            "total_tokens": row.prompt_tokens + row.completion_tokens, "kwh_min": energy, "kwh_max": energy,
            "kgco2eq_min": carbon, "kgco2eq_max": carbon}


_ORDERS: dict[str, RecordOrder] = {"datetime": "created_at", "cost": "cost", "total_tokens": "total_tokens"}


@router.get("/usage", summary="Usage rows, newest first; the Albert API's paging (page, limit), order and dates "
                              "are accepted too, and its totals answered beside the rows")
async def usage_rows(caller: Caller, usage: Usage, filters: Filters, limit: int = Query(100, ge=1, le=10_000),
                     offset: Offset | None = None,
                     page: int | None = Query(None, ge=1, le=MAX_INT32, description="The Albert API's: 1-based, "
                                              "of limit rows; instead of offset"),
                     order_by: Literal["datetime", "cost", "total_tokens"] = "datetime",
                     order_direction: Literal["asc", "desc"] = "desc",
                     date_from: int | None = Query(None, ge=0, le=MAX_UNIX, description="Unix time; as since"),
                     date_to: int | None = Query(None, ge=0, le=MAX_UNIX, description="Unix time; as until")
                     ) -> dict[str, Any]:
    if page is not None and offset is not None:
        raise InvalidRequest("Give page or offset, not both.", param="page")
    for name, unix, given in (("date_from", date_from, filters.since), ("date_to", date_to, filters.until)):
        if unix is not None and given is not None:
            raise InvalidRequest(f"Give {name} or {'since' if name == 'date_from' else 'until'}, not both.", param=name)
    domain = replace(filters.domain(),
                     since=filters.since if date_from is None else datetime.fromtimestamp(date_from, UTC),
                     until=filters.until if date_to is None else datetime.fromtimestamp(date_to, UTC))
    start = (page - 1) * limit if page is not None else offset or 0
    rows = await usage.records(caller, domain, limit=limit, offset=start, order_by=_ORDERS[order_by],
                               descending=order_direction == "desc")
    totals = (await usage.totals(caller, domain, []) or [{}])[0]
    total = int(totals.get("requests", 0))
    tokens = int(totals.get("prompt_tokens", 0)) + int(totals.get("completion_tokens", 0))
    return {"object": "list", "currency": usage.currency, "data": [_albert_row(r) for r in rows],
            "total": total, "total_requests": total, "total_tokens": tokens,
            "total_albert_coins": float(totals.get("cost", 0.0)), "total_co2": float(totals.get("co2_kg", 0.0)) * 1000,
            "page": start // limit + 1, "limit": limit, "total_pages": -(-total // limit),
            "has_more": start + len(rows) < total}


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
