"""``/v1/quotas``: rate limits and budgets (administrators)."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from socle.api.deps import Caller, Quotas
from socle.api.schemas import ListOf
from socle.api.strict import StrictRoute
from socle.db.integers import Amount, Count, Id

router = APIRouter(prefix="/v1", tags=["quotas"], route_class=StrictRoute)


class _Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(default=None, description="Only calls to this model; none: every model together")
    requests_per_minute: Count | None = None
    requests_per_day: Count | None = None
    tokens_per_minute: Count | None = None
    budget_tokens: Amount | None = Field(default=None, description="Tokens per budget_period")
    budget_cost: float | None = Field(default=None, ge=0, description="Cost per budget_period, in SOCLE_CURRENCY")
    budget_period: Literal["day", "month"] = "month"


class QuotaCreate(_Limits):
    scope: Literal["key", "user", "group", "role", "global"] = Field(
        description="key/user: their calls; group: the group's calls together; role: each user of the role; "
                    "global: everybody's calls together")
    subject: str = Field(default="", description="The key, user or group id, or the role name; empty for global")


class QuotaUpdate(_Limits):
    budget_period: Literal["day", "month"] | None = None  # type: ignore[assignment]


class QuotaOut(QuotaCreate):
    model_config = ConfigDict(from_attributes=True)
    id: int
    object: Literal["quota"] = "quota"
    created_at: datetime


@router.get("/quotas", response_model=ListOf)
async def list_quotas(caller: Caller, quotas: Quotas) -> ListOf:
    return ListOf(data=[QuotaOut.model_validate(q) for q in await quotas.list(caller)])


@router.post("/quotas", response_model=QuotaOut, status_code=status.HTTP_201_CREATED)
async def create_quota(body: QuotaCreate, caller: Caller, quotas: Quotas) -> QuotaOut:
    return QuotaOut.model_validate(await quotas.create(caller, **body.model_dump()))


@router.patch("/quotas/{quota_id}", response_model=QuotaOut)
async def update_quota(quota_id: Id, body: QuotaUpdate, caller: Caller, quotas: Quotas) -> QuotaOut:
    return QuotaOut.model_validate(await quotas.update(caller, quota_id, **body.model_dump(exclude_unset=True)))


@router.delete("/quotas/{quota_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_quota(quota_id: Id, caller: Caller, quotas: Quotas) -> None:
    await quotas.delete(caller, quota_id)
