"""The App protocol: an app declared outside the platform's code is built, served and run by it, through
nothing but the protocol; and the platform's own code names no app."""
from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
import typer
from fastapi import APIRouter, Depends
from pydantic_settings import BaseSettings, SettingsConfigDict

from socle.api.deps import Caller, app_services
from socle.api.strict import StrictRoute
from socle.app import create_app
from socle.apps import INSTALLED, installed_apps
from socle.apps.base import NavLink, PermissionSpec, PersonalData, Web
from socle.db import migrate
from socle.identity.permissions import SYSTEM, Principal, require
from socle.jobs.kinds import Kind, Pool
from socle.jobs.queue import JobQueue
from socle.platform import Mode, Platform
from socle.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = """
models:
  - {id: remote-embed, type: embeddings, backends: [{type: openai, url: "http://127.0.0.1:9/v1"}]}
"""


class EchoSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOCLE_ECHO_", extra="ignore")

    workers: int = 1


@dataclass
class Echoes:
    """The app's service: what callers asked to be echoed, said by a job."""

    jobs: JobQueue
    said: list[str] = field(default_factory=list)
    spoken: asyncio.Event = field(default_factory=asyncio.Event)

    async def ask(self, caller: Principal, text: str) -> int:
        require(caller, "echo:use")  # type: ignore[arg-type]
        return await self.jobs.enqueue("echo.say", {"text": text})

    async def say(self, payload: dict[str, Any]) -> None:
        self.said.append(str(payload["text"]))
        self.spoken.set()


router = APIRouter(prefix="/v1/echo", route_class=StrictRoute)
Service = Annotated[Echoes, Depends(app_services(Echoes))]


@router.post("")
async def ask(body: dict[str, str], caller: Caller, echoes: Service) -> dict[str, int]:
    return {"job": await echoes.ask(caller, body["text"])}


class EchoApp:
    name = "echo"
    title = "Écho"
    description = "Répète ce qu'on lui demande."
    audit_actions = {"echo.asked": "Écho demandé"}
    permissions = (PermissionSpec("echo:use", "Faire répéter un texte"),)
    migrations: Path | None = None

    def settings(self) -> EchoSettings:
        return EchoSettings()

    def build(self, platform: Platform, settings: EchoSettings) -> Echoes:
        return Echoes(platform.jobs)

    def pools(self, services: Echoes) -> Sequence[Pool]:
        return [Pool("echo", [Kind("echo.say", services.say)], 1)]

    def personal_data(self, sessions: object, settings: EchoSettings) -> Sequence[PersonalData]:
        return ()

    def web(self) -> Web:
        return Web(api=[router], nav=[NavLink("/ui/echo", "Écho", "echo:use")])

    def cli(self) -> typer.Typer | None:
        return None


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Platform]]:
    catalogue = tmp_path / "models.yaml"
    catalogue.write_text(CATALOGUE)
    settings = Settings(data_dir=tmp_path, config=catalogue, rag_embedding_model="remote-embed",
                        ingestion_workers=0, _env_file=None)  # type: ignore[call-arg]
    migrate.upgrade(settings.resolved_database_url)
    app = create_app(settings, apps=[EchoApp()])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://socle") as client:
            yield client, app.state.platform


async def key_for(platform: Platform, email: str, permissions: list[str]) -> str:
    role = await platform.identity.create_role(SYSTEM, name=email.split("@")[0], permissions=permissions)
    user = await platform.identity.create_user(SYSTEM, email=email, role=role.name)
    return (await platform.identity.create_key(SYSTEM, user_id=user.id)).secret


async def test_an_app_is_built_served_and_its_jobs_run_through_the_protocol(
        served: tuple[httpx.AsyncClient, Platform]) -> None:
    client, platform = served
    echoes = platform.app(Echoes)
    assert "echo" in [pool.name for pool in platform.pools]
    key = await key_for(platform, "agent@example.gouv.fr", ["echo:use"])
    answer = await client.post("/v1/echo", json={"text": "bonjour"}, headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    await asyncio.wait_for(echoes.spoken.wait(), 10)  # woken at once by the enqueue, not by a poll
    assert echoes.said == ["bonjour"]


async def test_an_apps_permission_is_known_to_roles_and_enforced(served: tuple[httpx.AsyncClient, Platform]) -> None:
    client, platform = served
    key = await key_for(platform, "autre@example.gouv.fr", ["models:read"])
    refused = await client.post("/v1/echo", json={"text": "x"}, headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 403 and "echo:use" in refused.json()["error"]["message"]
    assert platform.app(Echoes).said == []
    with pytest.raises(Exception, match="Unknown permissions"):
        await platform.identity.create_role(SYSTEM, name="typo", permissions=["echo:usse"])


async def test_admin_mode_builds_every_service_and_loads_no_model(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]
    migrate.upgrade(settings.resolved_database_url)
    platform = Platform.build(settings, Mode.ADMIN, apps=[EchoApp()])
    try:
        await platform.start()
        assert platform.app(Echoes).said == []
        assert not platform.registry.started  # no model file read, no backend client opened
        assert [pool.name for pool in platform.pools] == ["ingestion", "compliance", "fine-tuning", "training",
                                                          "batches", "echo"]  # declared, not run
    finally:
        await platform.close()


def test_the_platforms_own_code_names_no_app() -> None:
    """Only the list of installed apps, inside ``socle/apps``, names them: the core reaches an app through the
    protocol alone."""
    names = [app.name for app in installed_apps()]
    assert INSTALLED and len(names) == len(INSTALLED)
    core = [path for path in (ROOT / "socle").rglob("*") if path.is_file()
            and path.suffix in (".py", ".html", ".js", ".css", ".yaml")
            and "apps" not in path.relative_to(ROOT / "socle").parts[:1]
            and "dsfr" not in path.parts and "node_modules" not in path.parts]
    assert len(core) > 50
    naming = sorted(f"{path.relative_to(ROOT)}: {name}" for path in core for name in names
                    if name in path.read_text(encoding="utf-8", errors="replace").lower())
    assert naming == []


@pytest.mark.parametrize("module", [f"{name}.cli" for name in INSTALLED])
def test_an_apps_commands_import_alone(module: str) -> None:
    """No cycle through the ``socle`` command's private helpers: an app's CLI imports first, on its own."""
    done = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
