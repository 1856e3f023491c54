"""Addresses no page answers and faults of the platform: a DSFR page in French under ``/ui/``, the OpenAI error
envelope under ``/v1/``; and ``/`` leads to the UI. An app served in this process adds a page and an API route
that fail, the way a bug would."""
from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
import pytest
import typer
from fastapi import APIRouter
from pydantic_settings import BaseSettings

from socle.api.strict import StrictRoute
from socle.app import create_app
from socle.apps.base import PersonalData, Web
from socle.db import migrate
from socle.jobs.kinds import Pool
from socle.platform import Platform
from socle.settings import Settings

CATALOGUE = """
models:
  - {id: remote-embed, type: embeddings, backends: [{type: openai, url: "http://127.0.0.1:9/v1"}]}
"""
faulty = APIRouter(route_class=StrictRoute)


@faulty.get("/ui/panne")
@faulty.get("/v1/panne")
async def broken() -> None:
    raise RuntimeError("a bug")


class FaultyApp:
    name = "panne"
    title = "Panne"
    description = "Une page qui échoue."
    audit_actions: dict[str, str] = {}
    permissions = ()
    migrations: Path | None = None

    def settings(self) -> BaseSettings:
        return BaseSettings()

    def build(self, platform: Platform, settings: BaseSettings) -> None:
        return None

    def pools(self, services: None) -> Sequence[Pool]:
        return []

    def personal_data(self, sessions: object, settings: BaseSettings) -> Sequence[PersonalData]:
        return ()

    def web(self) -> Web:
        return Web(api=[faulty])

    def cli(self) -> typer.Typer | None:
        return None


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    catalogue = tmp_path / "models.yaml"
    catalogue.write_text(CATALOGUE)
    settings = Settings(data_dir=tmp_path, config=catalogue, rag_embedding_model="remote-embed",
                        ingestion_workers=0, site_accessibility="partial", _env_file=None)  # type: ignore[call-arg]
    migrate.upgrade(settings.resolved_database_url)
    app = create_app(settings, apps=[FaultyApp()])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # a browser gets the 500 page
        async with httpx.AsyncClient(transport=transport, base_url="http://socle") as client:
            yield client


async def test_an_unknown_page_is_the_dsfr_404_in_french(http: httpx.AsyncClient) -> None:
    response = await http.get("/ui/nulle-part")
    assert response.status_code == 404 and response.headers["content-type"].startswith("text/html")
    assert "<h1>Page non trouvée</h1>" in response.text and "Erreur 404" in response.text
    assert re.search(r"Accessibilité :\s+partiellement conforme", response.text)  # the footer, from the settings
    assert "content-security-policy" in response.headers

    fetched = await http.get("/ui/api/nulle-part")  # the pages' own fetches: JSON, in French
    assert fetched.status_code == 404 and fetched.json()["error"]["message"].startswith("La page que vous cherchez")

    api = await http.get("/v1/nulle-part")
    assert api.status_code == 404
    assert set(api.json()["error"]) == {"message", "type", "param", "code"} and api.json()["error"]["code"] == "not_found"


async def test_a_fault_is_the_dsfr_500_in_french_and_the_api_keeps_its_envelope(http: httpx.AsyncClient) -> None:
    response = await http.get("/ui/panne")
    assert response.status_code == 500 and "<h1>Erreur inattendue</h1>" in response.text
    assert "a bug" not in response.text and "Traceback" not in response.text
    assert 'href="/ui/mentions-legales"' in response.text
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]  # as every other page
    assert response.headers["x-frame-options"] == "DENY" and response.headers["cache-control"] == "no-store"

    api = await http.get("/v1/panne")
    assert api.status_code == 500
    assert api.json()["error"]["type"] == "server_error" and "a bug" not in api.text


async def test_the_root_leads_to_the_ui(http: httpx.AsyncClient) -> None:
    response = await http.get("/")
    assert response.status_code == 303 and response.headers["location"] == "/ui/chat"
    assert (await http.get("/ui/chat")).headers["location"].startswith("/ui/connexion")
