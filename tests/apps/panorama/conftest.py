"""The browser suite's server, accounts and Chromium, for the Panorama app's pages."""
from tests.ui.conftest import (  # noqa: F401  (fixtures)
    admin_api,
    browser,
    context,
    hostile_backend,
    page,
    ui_catalogue,
    ui_server,
)
