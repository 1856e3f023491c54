"""The feedback app as the platform installs it: its settings, its services, its job pool, its faces."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.apps.base import NavLink, PermissionSpec, PersonalData, Web
from socle.apps.feedback.analyses import Analyses
from socle.apps.feedback.engines import FittedEngines
from socle.apps.feedback.permissions import USE
from socle.apps.feedback.personal import FeedbackData
from socle.apps.feedback.runner import AnalysisJob
from socle.apps.feedback.service import FeedbackService
from socle.apps.feedback.taxonomy import load_taxonomy
from socle.jobs.kinds import Pool

if TYPE_CHECKING:
    import typer

    from socle.platform import Platform

HERE = Path(__file__).parent


class FeedbackSettings(BaseSettings):
    """``SOCLE_FEEDBACK_*``."""

    model_config = SettingsConfigDict(env_prefix="SOCLE_FEEDBACK_", env_file=".env", extra="ignore",
                                      populate_by_name=True)

    taxonomy: Path | None = Field(default=None, description="The taxonomy (YAML, its anchor examples in "
                                  "<name>_examples.jsonl beside it); none: Services Publics+'s five engagements")
    max_messages: int = Field(default=100_000, ge=1, description="Largest feedback dataset, in messages")
    workers: int = Field(default=1, ge=0, description="Analyses run at once in this process (0: none here; "
                         "another process runs them)")
    retention_days: int = Field(
        default=365, ge=0, description="Datasets imported this long ago are deleted with their analyses (0: kept "
        "until deleted by hand)",
        # SOCLE_RETENTION_FEEDBACK_DAYS: its name from when the platform's settings held it, still accepted.
        validation_alias=AliasChoices("SOCLE_FEEDBACK_RETENTION_DAYS", "SOCLE_RETENTION_FEEDBACK_DAYS"))


@dataclass(frozen=True, slots=True)
class FeedbackServices:
    """Datasets (import, read, delete) and analyses (the front: plan, estimate, start, report), the job that
    runs an analysis, and the engines both use (fitted once, kept)."""

    settings: FeedbackSettings
    datasets: FeedbackService
    analyses: Analyses
    job: AnalysisJob
    engines: FittedEngines


class FeedbackApp:
    name = "feedback"
    title = "Avis usagers"
    description = ("Caractérise les avis laissés par les usagers sur Services Publics+ (thèmes, tonalité, irritants, "
                   "urgence, données personnelles) et en tire des rapports avec graphiques.")
    audit_actions: dict[str, str] = {}
    permissions = (PermissionSpec(USE, "Analyser les avis des usagers", roles=("user",)),)
    migrations = HERE / "migrations"  # 0010 (its tables; the user role may use it), 0016 (its lost jobs)

    def settings(self) -> FeedbackSettings:
        return FeedbackSettings()

    def build(self, platform: Platform, settings: FeedbackSettings) -> FeedbackServices:
        datasets = FeedbackService(platform.sessions, platform.jobs, max_messages=settings.max_messages,
                                   max_upload_bytes=platform.settings.max_upload_bytes)
        engines = FittedEngines(platform.inference, load_taxonomy(settings.taxonomy),
                                embedding_model=platform.search.embedding_model,
                                cache_dir=platform.settings.data_dir / "cache" / "feedback")
        return FeedbackServices(settings, datasets, Analyses(datasets, engines),
                                AnalysisJob(platform.sessions, platform.identity, engines), engines)

    def pools(self, services: FeedbackServices) -> Sequence[Pool]:
        # On workers of their own: a long analysis never holds up an ingestion.
        return [Pool("feedback", services.job.kinds, services.settings.workers)]

    def personal_data(self, sessions: async_sessionmaker[AsyncSession],
                      settings: FeedbackSettings) -> Sequence[PersonalData]:
        return [FeedbackData(sessions, retention_days=settings.retention_days)]

    def web(self) -> Web:
        from socle.apps.feedback import api, ui

        return Web(api=[api.router], ui=[ui.router], templates=HERE / "templates", static=HERE / "static",
                   nav=[NavLink("/ui/avis", "Avis usagers", USE)], upload_paths=[api.DATASETS_PATH, ui.IMPORT_PATH])

    def cli(self) -> typer.Typer | None:
        from socle.apps.feedback.cli import feedback_app

        return feedback_app
