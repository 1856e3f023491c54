"""Every router of the API and of the web UI, the installed apps' included, reads its requests under the one rule for text and integers."""
from __future__ import annotations

import importlib
import pkgutil

from fastapi import APIRouter

import socle.api.routers
import socle.ui.routes
from socle.api.strict import StrictRoute
from socle.apps import installed_apps


def test_every_router_is_strict() -> None:
    routers = {}
    for package in (socle.api.routers, socle.ui.routes):
        for module in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            router = getattr(importlib.import_module(module.name), "router", None)
            if isinstance(router, APIRouter):
                routers[module.name] = router
    for app in installed_apps():  # and the installed apps' pages and routes
        web = app.web()
        routers.update({f"{app.name} {router.prefix}": router for router in (*web.api, *web.ui)})
    assert len(routers) > 15
    assert [name for name, router in routers.items() if router.route_class is not StrictRoute
            or not all(isinstance(route, StrictRoute) for route in router.routes)] == []
