"""Liveness (``/health``), readiness (``/ready``: database and backends reachable), Prometheus ``/metrics``."""
from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from starlette.responses import JSONResponse, Response

from socle.api.deps import Caller, inference_service, platform
from socle.api.strict import StrictRoute
from socle.identity.permissions import Permission, require

router = APIRouter(tags=["health"], route_class=StrictRoute)


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    try:
        async with platform(request).engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        database = True
    except Exception:
        database = False
    backends = await inference_service(request).registry.health()
    ok = database and all(backends.values())
    return JSONResponse({"status": "ready" if ok else "not ready", "database": database, "backends": backends},
                        status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics (a key with metrics:read)")
async def metrics(request: Request, caller: Caller) -> Response:
    require(caller, Permission.METRICS_READ)
    return Response(platform(request).metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
