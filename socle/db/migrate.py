"""Apply Alembic migrations from code (``socle db upgrade``, ``socle serve``, the tests)."""
from __future__ import annotations

import asyncio
import concurrent.futures
import os
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
APPS = Path(__file__).parents[1] / "apps"


def alembic_config(database_url: str) -> Config:
    """The platform's migrations and the apps', on one history: every app shipped under ``socle/apps`` (installed
    or not, so that the history stays whole when one is taken off the list) and every installed one."""
    from socle.apps import installed_apps

    shipped = sorted(path for path in APPS.glob("*/migrations") if path.is_dir())
    installed = [app.migrations for app in installed_apps() if app.migrations and app.migrations not in shipped]
    folders = [MIGRATIONS / "versions", *shipped, *installed]
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(str(folder) for folder in folders))
    config.set_main_option("sqlalchemy.url", database_url)
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision``; creates the SQLite file's directory if needed."""
    if database_url.startswith("sqlite") and ":///" in database_url:
        Path(database_url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    config = alembic_config(database_url)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(config, revision)
        return
    # The migration environment drives its own event loop: give it a thread of its own.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(command.upgrade, config, revision).result()
