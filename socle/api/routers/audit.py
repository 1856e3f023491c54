"""``/v1/audit``: the audit trail, for ``audit:read``; JSON a page at a time, or all of it as CSV."""
from __future__ import annotations

from datetime import UTC
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime, BaseModel, Field, field_validator
from starlette.responses import Response, StreamingResponse

from socle.api.deps import Caller, platform
from socle.api.strict import StrictRoute
from socle.audit.exports import as_json, csv_chunks
from socle.audit.service import AuditTrail
from socle.audit.store import AuditFilter
from socle.db.integers import MAX_INTEGER, Offset

router = APIRouter(prefix="/v1", tags=["audit"], route_class=StrictRoute)


async def audit_trail(request: Request) -> AuditTrail:
    return platform(request).audit


Audit = Annotated[AuditTrail, Depends(audit_trail)]


class AuditFilters(BaseModel):
    action: str | None = Field(default=None, max_length=64, pattern=r"^[a-z_.]+$",
                               description="An action (key.created), or a family ending with a dot (key.)")
    actor: int | None = Field(default=None, ge=1, le=MAX_INTEGER, description="The acting user's id")
    target_type: str | None = Field(default=None, max_length=32, pattern=r"^[a-z_]+$")
    target_id: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None

    @field_validator("since", "until")
    @classmethod
    def _in_utc_range(cls, value: AwareDatetime | None) -> AwareDatetime | None:
        try:
            # year 1 at +05:00 falls before year 1 in UTC, which no datetime holds
            return value.astimezone(UTC) if value is not None else None
        except OverflowError as exc:
            raise ValueError("out of range once in UTC") from exc

    def domain(self) -> AuditFilter:
        return AuditFilter(action=self.action, actor_user_id=self.actor, target_type=self.target_type,
                           target_id=self.target_id, since=self.since, until=self.until)


@router.get("/audit", summary="The audit trail, newest first (format=csv: all of it, oldest first)",
            response_model=None)
async def audit_events(caller: Caller, audit: Audit, filters: Annotated[AuditFilters, Query()],
                       limit: int = Query(100, ge=1, le=1000), offset: Offset = 0,
                       format: Literal["json", "csv"] = "json") -> dict[str, Any] | Response:
    if format == "csv":
        rows = await audit.export(caller, filters.domain())
        return StreamingResponse(csv_chunks(rows), media_type="text/csv; charset=utf-8",
                                 headers={"content-disposition": 'attachment; filename="journal-audit.csv"'})
    domain = filters.domain()
    views = await audit.events(caller, domain, limit=limit, offset=offset)
    total = await audit.count(caller, domain)
    return {"object": "list", "data": [as_json(view) for view in views], "total": total,
            "has_more": offset + len(views) < total}
