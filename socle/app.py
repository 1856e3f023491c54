"""Builds the FastAPI application: routers, middleware, error envelope, and the lifespan that opens
storage and loads the models."""
from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI

from socle import __version__, logs, ui
from socle.api import docs, errors
from socle.api.limits import BodySizeLimit
from socle.api.origin import RequestOrigin
from socle.api.readiness import Readiness
from socle.api.routers import (
    audio,
    audit,
    batches,
    catalogue,
    collections,
    conversations,
    documents,
    exports,
    files,
    fine_tuning,
    health,
    identity,
    inference,
    models,
    moderations,
    quotas,
    responses,
    usage,
)
from socle.apps import installed_apps
from socle.apps.base import App
from socle.platform import Mode, Platform
from socle.settings import Settings, get_settings


def _settle_the_heap() -> None:
    """Once everything long-lived is loaded, move it out of the cyclic collector's sight and let the
    collector run less often: per request, it was a quarter of the gateway's CPU."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def create_app(settings: Settings | None = None, *, apps: Sequence[App] | None = None) -> FastAPI:
    """The HTTP app, with the installed apps (or ``apps``)."""
    settings = settings or get_settings()
    apps = installed_apps() if apps is None else apps
    faces = {app.name: app.web() for app in apps}
    logs.configure(kind=settings.log_format, level=settings.log_level, static=settings.log_static)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        platform = Platform.build(settings, Mode.SERVE, apps=apps)
        app.state.platform = platform
        try:
            await platform.start()
            app.state.readiness = Readiness(platform.engine)
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
                                for path in ("/v1/documents", ui.UPLOAD_PATH,
                                             *(path for web in faces.values() for path in web.upload_paths))}
                       | {"/v1/files": max(settings.files_max_bytes, settings.max_upload_bytes) + 1024 * 1024,
                          "/v1/audio/transcriptions": settings.audio_max_bytes + 1024 * 1024})
    for module in (health, models, inference, identity, exports, usage, quotas, collections, conversations,
                   documents, files, fine_tuning, responses, batches, audit, catalogue, audio,
                   moderations):
        app.include_router(module.router)
    for web in faces.values():
        for router in web.api:
            app.include_router(router)
    ui.install(app, faces)
    app.add_middleware(RequestOrigin, trusted=settings.ui_trusted_proxies)  # for the audit trail
    build = app.build_middleware_stack
    # Outermost, around Starlette's own error middleware: the 500 of an unhandled error carries the id too;
    # then the inference hot path, above the rest of the stack (an open stream holds none of its frames).
    app.build_middleware_stack = lambda: logs.RequestId(  # type: ignore[method-assign]
        inference.PlainRoutes(build(), max_bytes=settings.max_body_bytes))
    return app


def create_probe_app(platform: Platform) -> FastAPI:
    """What a ``socle worker`` answers on ``SOCLE_WORKER_PORT``: liveness, readiness and its own metrics (the
    documents it ingests count there, not on the API's replicas), behind the same key check as the API's."""
    app = FastAPI(title="Socle IA worker", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.platform = platform
    app.state.readiness = Readiness(platform.engine)
    errors.install(app)
    app.include_router(health.router)
    return app
