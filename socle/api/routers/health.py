"""Liveness (``/health``), readiness (``/ready``: see :mod:`socle.api.readiness`), Prometheus ``/metrics``."""
from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import JSONResponse, Response

from socle.api.deps import Caller, platform
from socle.api.readiness import Readiness
from socle.api.strict import StrictRoute
from socle.identity.permissions import Permission, require

router = APIRouter(tags=["health"], route_class=StrictRoute)


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    """200 while this replica can serve; the body says nothing of the topology (no backend, no database)."""
    readiness: Readiness | None = getattr(request.app.state, "readiness", None)  # set once configuration loaded
    ok = readiness is not None and await readiness()
    return JSONResponse({"status": "ready" if ok else "not ready"}, status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics (a key with metrics:read)")
async def metrics(request: Request, caller: Caller) -> Response:
    require(caller, Permission.METRICS_READ)
    metrics_ = platform(request).metrics
    await metrics_.refresh()  # the job queues, read once per scrape
    return Response(metrics_.exposition(), media_type=CONTENT_TYPE_LATEST)
