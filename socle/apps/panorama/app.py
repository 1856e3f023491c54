"""The Panorama app as the platform installs it: its settings, its services (catalogue, census of needs,
calls for projects), its permissions, its tables, its faces."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.apps.base import NavLink, PermissionSpec, PersonalData, Web
from socle.apps.panorama.audit import ACTIONS
from socle.apps.panorama.calls import CallService
from socle.apps.panorama.catalogue import CatalogueService, PlatformApp
from socle.apps.panorama.needs import NeedService
from socle.apps.panorama.permissions import EDIT, JURY, PERMISSIONS, READ
from socle.apps.panorama.personal import PanoramaData
from socle.apps.panorama.search import Embed
from socle.endpoints import Endpoint
from socle.identity.permissions import SYSTEM
from socle.inference.service import InferenceService
from socle.jobs.kinds import Pool

if TYPE_CHECKING:
    import typer

    from socle.platform import Platform

HERE = Path(__file__).parent
DESCRIPTION = ("Panorama des solutions d'IA par famille fonctionnelle, recherche par besoin en langage courant, "
               "recensement des besoins des administrations et appels à projets d'IA avec leur jury et le suivi "
               "des indicateurs d'impact.")


class PanoramaSettings(BaseSettings):
    """``SOCLE_PANORAMA_*``."""

    model_config = SettingsConfigDict(env_prefix="SOCLE_PANORAMA_", env_file=".env", extra="ignore")

    sample: bool = Field(default=True, description="Load the illustrative sample catalogue when the catalogue holds "
                                                   "no solution yet (the platform's own apps aside)")
    retention_days: int = Field(default=0, ge=0, description="Declared needs older than this are deleted (0: kept "
                                "until deleted by hand); projects and marks stay, the record of their call")
    workers: int = Field(default=1, ge=0, description="Catalogue indexing jobs run at once in this process (0: "
                         "none here; another process runs them, or searches embed what is missing)")


@dataclass(frozen=True, slots=True)
class PanoramaServices:
    settings: PanoramaSettings
    catalogue: CatalogueService
    needs: NeedService
    calls: CallService


def embedder(inference: InferenceService, model: str) -> Embed:
    """Texts → unit vectors through the platform's inference service (quotas and usage as for any caller:
    the catalogue is indexed by the platform itself)."""
    async def embed(texts: list[str], input_type: str) -> np.ndarray:
        answer = await inference.call(SYSTEM, Endpoint.EMBEDDINGS,
                                      {"model": model, "input": texts, "input_type": input_type})
        vectors = np.asarray([item["embedding"] for item in sorted(answer["data"], key=lambda d: d["index"])],
                             dtype=np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return embed


class PanoramaApp:
    name = "panorama"
    title = "Panorama IA"
    description = DESCRIPTION
    audit_actions: Mapping[str, str] = ACTIONS
    permissions = (PermissionSpec(READ, PERMISSIONS[READ], roles=("user",)),
                   PermissionSpec(EDIT, PERMISSIONS[EDIT]),
                   PermissionSpec(JURY, PERMISSIONS[JURY]))
    migrations: Path | None = HERE / "migrations"

    def settings(self) -> PanoramaSettings:
        return PanoramaSettings()

    def build(self, platform: Platform, settings: PanoramaSettings) -> PanoramaServices:
        from socle.platform import Mode

        # An administration command loads no model: the catalogue is then read and edited, never searched.
        model = platform.search.embedding_model if platform.mode != Mode.ADMIN else None

        def apps() -> list[PlatformApp]:  # read when the catalogue syncs: every app is built by then
            return [PlatformApp(i.app.name, i.app.title, i.app.description)
                    for i in platform.apps.values()]

        catalogue = CatalogueService(platform.sessions, platform.audit, platform.jobs,
                                     embedder(platform.inference, model) if model else None,
                                     embedding_model=model, apps=apps, sample=settings.sample)
        return PanoramaServices(settings, catalogue, NeedService(platform.sessions, catalogue),
                                CallService(platform.sessions, platform.audit))

    def pools(self, services: PanoramaServices) -> Sequence[Pool]:
        return [Pool("panorama", services.catalogue.kinds, services.settings.workers)]

    def personal_data(self, sessions: async_sessionmaker[AsyncSession],
                      settings: PanoramaSettings) -> Sequence[PersonalData]:
        return [PanoramaData(sessions, retention_days=settings.retention_days)]

    def web(self) -> Web:
        from socle.apps.panorama import api, ui

        return Web(api=[api.router], ui=[ui.router], templates=HERE / "templates",
                   nav=[NavLink(ui.PREFIX, "Panorama IA", READ)], upload_paths=[api.IMPORT_PATH, ui.IMPORT_PATH])

    def cli(self) -> typer.Typer | None:
        from socle.apps.panorama.cli import panorama_app

        return panorama_app
