"""The browser suite's server, accounts and Chromium, for the Panorama app's pages; a fresh database of each
store for the service tests."""
from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.conftest import _on_postgres, database_url
from tests.ui.conftest import (  # noqa: F401  (fixtures)
    admin_api,
    browser,
    context,
    hostile_backend,
    page,
    ui_catalogue,
    ui_server,
)


def fresh_database(request: pytest.FixtureRequest, folder: Path) -> str:
    """An empty database of the store the test is parametrised with (``sqlite`` or ``postgres``): its URL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{folder / 'socle.db'}"
    admin = request.getfixturevalue("postgres_admin")
    name = f"socle_panorama_{secrets.token_hex(4)}"
    _on_postgres(admin, f'CREATE DATABASE "{name}"')
    return database_url(admin, name)
