"""The API's documentation pages: Swagger UI at /docs and ReDoc at /redoc, over /openapi.json, their scripts
and styles served by the platform itself from the ``fastapi-offline`` package (never a CDN: the pages work on
a network with no way out), or none of the three when ``SOCLE_API_DOCS=false``."""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

ASSETS_PATH = "/docs-assets"


def application(*, docs: bool, **options: Any) -> FastAPI:
    """The FastAPI application, documented or not."""
    if not docs:
        return FastAPI(docs_url=None, redoc_url=None, openapi_url=None, **options)
    return FastAPIOffline(static_url=ASSETS_PATH, **options)
