"""Builds the FastAPI application: routers, middleware, error envelope, and the lifespan that opens
storage and loads the models."""
from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from socle import __version__, ui
from socle.api import access_log, docs, errors
from socle.api.limits import BodySizeLimit
from socle.api.origin import RequestOrigin
from socle.api.routers import (
    audit,
    collections,
    documents,
    exports,
    feedback,
    health,
    identity,
    inference,
    models,
    quotas,
    usage,
)
from socle.platform import Platform
from socle.settings import Settings, get_settings


def _settle_the_heap() -> None:
    """Once everything long-lived is loaded, move it out of the cyclic collector's sight and let the
    collector run less often: per request, it was a quarter of the gateway's CPU."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    access_log.install()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        platform = Platform.open(settings)
        app.state.platform = platform
        try:
            await platform.start_inference()
            _settle_the_heap()
            yield
        finally:
            await platform.close()

    app = docs.application(
        docs=settings.api_docs,
        title="Socle IA",
        version=__version__,
        summary="Sovereign generative-AI platform: OpenAI-compatible API, identity, models.",
        lifespan=lifespan,
        telemetry={"tracing": False, "metrics": False, "logs": False},  # no telemetry; /metrics says it all
    )
    errors.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes,
                       uploads={path: settings.max_upload_bytes + 1024 * 1024  # + form fields
                                for path in ("/v1/documents", feedback.DATASETS_PATH, ui.UPLOAD_PATH,
                                             ui.FEEDBACK_UPLOAD_PATH)})
    for module in (health, models, inference, identity, exports, usage, quotas, collections, documents,
                   feedback, audit):
        app.include_router(module.router)
    ui.install(app)
    app.add_middleware(RequestOrigin, trusted=settings.ui_trusted_proxies)  # for the audit trail
    return app
