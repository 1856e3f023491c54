"""The App protocol: everything an app adds to the platform, declared in one object.

An app is a folder under ``socle/apps/`` whose ``__init__`` exposes ``APP``, an object of this shape, and is
named in ``socle/apps/__init__.py``'s list of installed apps. The platform loops over that list: the
composition root builds each app's services once (after its own, which the app receives), gives its job
pools workers, covers its personal data by the platform's duties (erasure, export, retention, register);
the HTTP app mounts its API and UI routers and templates; the ``socle`` command adds its CLI; the schema
holds its tables (on the shared metadata, its migrations on the shared history). The core never names an
app: an app reaches the core only through what it is given here.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic_settings import BaseSettings
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.jobs.kinds import Pool

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter

    from socle.compliance.register import Activity
    from socle.platform import Platform


@dataclass(frozen=True, slots=True)
class PermissionSpec:
    """A permission an app adds: roles hold it by name; ``roles`` are the built-in roles given it."""

    name: str  # "<app>:<verb>", e.g. "feedback:use"
    label: str  # what it allows, in French, for the roles page
    roles: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NavLink:
    """An entry of the UI's main menu, shown to those who hold ``permission``."""

    path: str
    label: str
    permission: str


class PersonalData(Protocol):
    """One kind of personal data an app keeps. The platform's duties towards people cover it: erasing a
    person, exporting what the platform holds about them, deleting what outlived its retention period,
    and the register of processing activities."""

    @property
    def kind(self) -> str:
        """Its name among the retention kinds (``SOCLE_<APP>_RETENTION_DAYS`` sets its period)."""
        ...

    @property
    def label(self) -> str:
        """Its name for a person, in French."""
        ...

    @property
    def retention_days(self) -> int:
        """Days kept (0: until deleted by hand)."""
        ...

    @property
    def tables(self) -> Sequence[str]:
        """The tables its rows live in: vacuumed after deletions, so that nothing lingers in free pages."""
        ...

    def activity(self, periods: str, recipients: list[str]) -> Activity:
        """Its entry in the register (GDPR art. 30); ``periods`` says its retention, ``recipients`` names the
        models that may receive it."""
        ...

    async def erase(self, session: AsyncSession, user_id: int) -> dict[str, int]:
        """Delete what belongs to this person, in the erasure's transaction; counts by name (no content)."""
        ...

    def export(self, user_id: int) -> AsyncIterator[tuple[str, AsyncIterator[dict[str, Any]]]]:
        """What belongs to this person, as named lists of JSON objects, streamed (a dataset may be large): the
        archive's JSON holds each name with its list. A value of an object may itself be an async iterator of
        objects, a nested list streamed the same way (a dataset's messages)."""
        ...

    async def expire(self, cutoff: datetime) -> int:
        """Delete what was created before ``cutoff``; the number of rows deleted."""
        ...


@dataclass(frozen=True, slots=True)
class Web:
    """An app's face: API routes, UI pages and the folders of their templates and static files."""

    api: Sequence[APIRouter] = ()
    ui: Sequence[APIRouter] = ()
    templates: Path | None = None  # found by the UI's loader after the platform's own (whose base.html they extend)
    static: Path | None = None  # served under /ui/static/<app>/
    nav: Sequence[NavLink] = ()
    upload_paths: Sequence[str] = ()  # routes that take a file: they accept an upload's size, not an API body's


class App(Protocol):
    """What an installed app declares. ``build`` runs once, in the composition root, with the platform's
    services already built; what it returns is the app's service object, found again by its type with
    :meth:`socle.platform.Platform.app`."""

    @property
    def name(self) -> str:
        """Its one-word name: CLI command, settings prefix (``SOCLE_<NAME>_*``), job-kind prefix."""
        ...

    @property
    def title(self) -> str:
        """Its name for a person, in French."""
        ...

    @property
    def description(self) -> str:
        """What it does, in one French sentence (the catalogue of solutions lists the platform's apps)."""
        ...

    @property
    def audit_actions(self) -> Mapping[str, str]:
        """The actions it records in the audit trail (named ``<name>.<verb>``), with their French labels."""
        ...

    @property
    def permissions(self) -> Sequence[PermissionSpec]: ...

    @property
    def migrations(self) -> Path | None:
        """Its Alembic versions folder: revisions on the platform's one history (``down_revision`` the head
        they were written after), so that ``socle db upgrade`` brings every table to date."""
        ...

    def settings(self) -> BaseSettings:
        """Its settings, read from ``SOCLE_<NAME>_*`` environment variables (and ``.env``)."""
        ...

    def build(self, platform: Platform, settings: Any) -> Any:
        """Its services, given the platform's and its own settings."""
        ...

    def pools(self, services: Any) -> Sequence[Pool]:
        """Its job kinds, grouped in pools that get workers of their own."""
        ...

    def personal_data(self, sessions: async_sessionmaker[AsyncSession], settings: Any) -> Sequence[PersonalData]:
        """The kinds of personal data it keeps, given the database and its settings: they are handed to the
        platform's duties (erasure, export, retention) when these are built, before any app's services."""
        ...

    def web(self) -> Web: ...

    def cli(self) -> typer.Typer | None:
        """Its ``socle <name> …`` commands (:mod:`socle.console` has what they share)."""
        ...


@dataclass(slots=True)
class Installed:
    """An app once built by the platform."""

    app: App
    settings: Any
    services: Any
    pools: Sequence[Pool] = field(default_factory=tuple)
    personal_data: Sequence[PersonalData] = field(default_factory=tuple)
