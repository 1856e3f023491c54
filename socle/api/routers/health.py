"""Liveness (``/health``) and readiness (``/ready``: database and backends reachable)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import text
from starlette.responses import JSONResponse

from socle.api.deps import inference, platform

router = APIRouter(tags=["health"])


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
    backends = await inference(request).registry.health()
    ok = database and all(backends.values())
    return JSONResponse({"status": "ready" if ok else "not ready", "database": database, "backends": backends},
                        status_code=200 if ok else 503)
