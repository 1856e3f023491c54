"""Apps built on the platform through the App protocol (:mod:`socle.apps.base`): the core never names one,
it loops over this list. Installing an app is adding its module here."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from socle.apps.base import App

INSTALLED = ("socle.apps.feedback", "socle.apps.panorama")


def installed_apps() -> list[App]:
    """Each installed app's ``APP``, in the order above (their menu entries and routes keep it)."""
    return [importlib.import_module(module).APP for module in INSTALLED]
