"""What every ``socle`` command shares, the apps' included: the consoles, the checked settings, and the
platform opened for one action in the mode the command needs."""
from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Collection
from typing import TypeVar

import typer
from rich.console import Console

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


def prepare(checked: Settings) -> None:
    """Data directory, schema, and the first admin (its key printed once, and kept in admin.key)."""
    checked.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(checked.resolved_database_url)

    async def bootstrap(platform: Platform) -> str | None:
        return await platform.identity.bootstrap_admin(checked.admin_email, checked.admin_key_file)

    key = with_platform(bootstrap)
    if key:
        console.print(f"[bold green]First administrator created[/] ({checked.admin_email}).")
        if sys.stdout.isatty():  # a person is reading, not a log collector
            console.print(f"API key (shown once, also written to {checked.admin_key_file}, mode 0600):")
            console.print(key, soft_wrap=True, highlight=False)
        else:
            console.print(f"Its API key is in {checked.admin_key_file} (mode 0600); it is printed only to a "
                          "terminal, never to a log.")
