"""The web UI: server-rendered pages in the French State design system (DSFR), in French, for the civil
servants who never see the API.

HTTP only, like ``socle.api``: each page acts as the signed-in user's :class:`Principal` through the
platform's services, so the UI obeys exactly the API's rules. The DSFR's assets are installed by the build
(``make install``) under ``static/dsfr``: nothing is loaded from elsewhere at run time. Installed apps add
their pages, templates, static files and menu entries (:class:`socle.apps.base.Web`).
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from socle.apps.base import NavLink, Web
from socle.identity.permissions import Principal
from socle.ui.routes import (
    admin,
    affiner,
    audit,
    auth,
    chat,
    compliance,
    documents,
    keys,
    proconnect,
    roles,
    site,
    usage,
)
from socle.ui.security import SecurityHeaders
from socle.ui.web import EXCEPTION_HANDLERS, STATIC_DIR, TEMPLATES, SiteLoader

UPLOAD_PATH = "/ui/api/documents"
log = logging.getLogger("socle.ui")


def _menu(links: Sequence[NavLink], principal: Principal) -> list[tuple[str, str]]:
    """The apps' entries of the main menu that this person may open."""
    return [(link.path, link.label) for link in links if principal.can(link.permission)]


def install(app: FastAPI, faces: Mapping[str, Web]) -> None:
    """Routes, static assets, security headers and the UI's own error handling; the apps' pages (``faces``, by
    app name) after the platform's."""
    if not (STATIC_DIR / "dsfr" / "dsfr.min.css").is_file():
        log.warning("the DSFR's assets are missing from %s: run `make install` (pages will be unstyled)",
                    STATIC_DIR / "dsfr")
    for module in (auth, proconnect, chat, documents, affiner, keys, usage, admin, roles, compliance, audit, site):
        app.include_router(module.router)
    app.include_router(admin.pickers)
    links = []
    for name, web in faces.items():
        for router in web.ui:
            app.include_router(router)
        searchpath: list[str] = TEMPLATES.env.loader.searchpath  # type: ignore[union-attr]
        if web.templates is not None and str(web.templates) not in searchpath:
            searchpath.append(str(web.templates))
        if web.static is not None:
            app.mount(f"/ui/static/{name}", StaticFiles(directory=web.static), name=f"ui-static-{name}")
        links.extend(web.nav)
    TEMPLATES.env.globals["app_menu"] = functools.partial(_menu, links)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    for exception, handler in EXCEPTION_HANDLERS.items():
        app.add_exception_handler(exception, handler)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(SiteLoader)
