"""The web UI: server-rendered pages in the French State design system (DSFR), in French, for the civil
servants who never see the API.

HTTP only, like ``socle.api``: each page acts as the signed-in user's :class:`Principal` through the
platform's services, so the UI obeys exactly the API's rules. The DSFR's assets are installed by the build
(``make install``) under ``static/dsfr``: nothing is loaded from elsewhere at run time.
"""
from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from socle.ui.routes import (
    admin,
    audit,
    auth,
    avis,
    chat,
    compliance,
    documents,
    keys,
    proconnect,
    roles,
    usage,
)
from socle.ui.security import SecurityHeaders
from socle.ui.web import EXCEPTION_HANDLERS, STATIC_DIR

UPLOAD_PATH = "/ui/api/documents"
FEEDBACK_UPLOAD_PATH = avis.IMPORT_PATH  # a file of citizens' feedback: the upload limit too
log = logging.getLogger("socle.ui")


def install(app: FastAPI) -> None:
    """Routes, static assets, security headers and the UI's own error handling."""
    if not (STATIC_DIR / "dsfr" / "dsfr.min.css").is_file():
        log.warning("the DSFR's assets are missing from %s: run `make install` (pages will be unstyled)",
                    STATIC_DIR / "dsfr")
    for module in (auth, proconnect, chat, documents, keys, usage, admin, roles, avis, compliance, audit):
        app.include_router(module.router)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    for exception, handler in EXCEPTION_HANDLERS.items():
        app.add_exception_handler(exception, handler)
    app.add_middleware(SecurityHeaders)
