"""Access and portability: ``GET /v1/me/export`` (one's own data) and ``GET /v1/users/{id}/export``
(anyone's, ``users:admin``): a ZIP archive, built on disk and sent from there, deleted once sent."""
from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from pathlib import Path

from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.responses import FileResponse

from socle.api.deps import Caller, platform
from socle.api.strict import StrictRoute
from socle.db.integers import Id
from socle.identity.permissions import Principal
from socle.platform import Platform

router = APIRouter(prefix="/v1", tags=["identity"], route_class=StrictRoute)
_ZIP = {200: {"content": {"application/zip": {}}, "description": "The archive: donnees.json and fichiers/"}}


async def archive_response(service: Platform, actor: Principal, user_id: int) -> FileResponse:
    """The archive of ``user_id`` as a download; the temporary file (owner-only) goes once it is sent."""
    handle, name = await asyncio.to_thread(tempfile.mkstemp, prefix="socle-export-", suffix=".zip")
    os.close(handle)
    path = Path(name)
    try:
        await service.exports.write(actor, user_id, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        raise
    return FileResponse(path, media_type="application/zip", filename=f"socle-donnees-{user_id}.zip",
                        background=BackgroundTask(path.unlink, missing_ok=True))


@router.get("/me/export", response_class=FileResponse, responses=_ZIP,
            summary="Everything the platform holds about the caller (GDPR access and portability)")
async def export_me(request: Request, caller: Caller) -> FileResponse:
    return await archive_response(platform(request), caller, caller.user_id)


@router.get("/users/{user_id}/export", response_class=FileResponse, responses=_ZIP,
            summary="Everything the platform holds about a user (users:admin)")
async def export_user(user_id: Id, request: Request, caller: Caller) -> FileResponse:
    return await archive_response(platform(request), caller, user_id)
