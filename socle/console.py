"""What every ``socle`` command shares, the apps' included: the consoles, the checked settings, and the
platform opened for one action in the mode the command needs."""
from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Collection
from typing import TypeVar

import typer
from rich.console import Console

from socle import logs
from socle.db import migrate
from socle.errors import SocleError
from socle.platform import Mode, Platform
from socle.settings import ConfigError, Settings, get_settings

console = Console()
err = Console(stderr=True)
T = TypeVar("T")


def settings() -> Settings:
    """The settings, checked now (the catalogue too): a faulty field is named before anything starts."""
    try:
        checked = get_settings()
        checked.catalogue()
        return checked
    except ConfigError as exc:
        err.print(f"[bold red]Invalid configuration:[/] {exc}")
        raise typer.Exit(2) from exc


def with_platform(action: Callable[[Platform], Awaitable[T]], *, mode: Mode = Mode.ADMIN,
                  pools: Collection[str] = ()) -> T:
    """Run one action on the platform: ``admin`` mode opens the database only; ``batch`` loads the models
    and runs the job pools named (none by default). A refused action prints its reason and exits 1."""
    checked = settings()

    async def run() -> T:
        platform = Platform.build(checked, mode)
        try:
            await platform.start(pools=pools)
            return await action(platform)
        finally:
            await platform.close()

    try:
        return asyncio.run(run())
    except SocleError as exc:
        err.print(f"[bold red]Error:[/] {exc.message}")
        raise typer.Exit(1) from exc


def prepare(checked: Settings, *, bootstrap: bool = True) -> None:
    """Data directory, then the schema: migrated here (``migrate_on_start``), or waited for while another
    process migrates it (exit 1 when it is still not current after ``schema_wait_s``: a replica never runs on
    a schema it was not written for). Then the first admin, where this process migrates."""
    checked.data_dir.mkdir(parents=True, exist_ok=True)
    if checked.migrate_on_start:
        upgrade(checked, bootstrap=bootstrap)
    else:
        wait_for_schema(checked)


def upgrade(checked: Settings, revision: str = "head", *, bootstrap: bool = True) -> None:
    """Migrate and create the first admin under the migration lock: of replicas starting together, one does
    both and the others find them done."""
    url = checked.resolved_database_url
    with migrate.locked(url):
        migrate.upgrade_unlocked(url, revision)
        if bootstrap and revision == "head":
            _bootstrap(checked)


def wait_for_schema(checked: Settings) -> None:
    def told(state: str) -> None:
        _notice(checked, f"Waiting up to {checked.schema_wait_s:g} s for the database schema ({state}); `socle db "
                "upgrade` migrates it.")

    state = migrate.wait_until_current(checked.resolved_database_url, checked.schema_wait_s, on_wait=told)
    if state is not None:
        _notice(checked, f"Database schema not current after {checked.schema_wait_s:g} s ({state}): run `socle db "
                "upgrade` (the migrations job), or set SOCLE_MIGRATE_ON_START=true.", error=True)
        raise typer.Exit(1)


def _notice(checked: Settings, message: str, *, error: bool = False) -> None:
    """A start-up message: a log record when logs are JSON (a collector reads them, one format per line),
    else a line on the console."""
    if checked.log_format == "json":
        logs.configure(kind="json", level=checked.log_level, static=checked.log_static)
        logging.getLogger("socle.setup").log(logging.ERROR if error else logging.INFO, message)
    elif error:
        err.print(f"[bold red]{message}[/]", highlight=False)
    else:
        console.print(message, highlight=False)


def _bootstrap(checked: Settings) -> None:
    """The first admin, its key printed once to a terminal and kept in admin.key (or the deployment's own)."""
    given = checked.admin_api_key.get_secret_value() if checked.admin_api_key else None

    async def bootstrap(platform: Platform) -> str | None:
        return await platform.identity.bootstrap_admin(checked.admin_email, checked.admin_key_file, key=given)

    key = with_platform(bootstrap)
    if not key:
        return
    created = f"First administrator created ({checked.admin_email})."
    if given:
        _notice(checked, f"{created} Its API key is the one of SOCLE_ADMIN_API_KEY.")
    elif sys.stdout.isatty():  # a person is reading, not a log collector
        _notice(checked, created)
        console.print(f"API key (shown once, also written to {checked.admin_key_file}, mode 0600):")
        console.print(key, soft_wrap=True, highlight=False)
    else:
        _notice(checked, f"{created} Its API key is in {checked.admin_key_file} (mode 0600); it is printed only to "
                "a terminal, never to a log.")
