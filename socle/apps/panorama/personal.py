"""The Panorama app's personal data, under the platform's duties towards people. What an agent writes here
is their administration's work (a need of the service, a project, a juror's marks): erasing a person
removes them from it — the rows stay, no longer linked to anyone — and the export of a person's data lists
it. Declared needs older than ``SOCLE_PANORAMA_RETENTION_DAYS`` go (0: kept until deleted); projects and
marks are the record of a call and stay."""
from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.apps.panorama.models import PanoramaNeed, PanoramaProject, PanoramaScore
from socle.compliance.export import in_batches
from socle.compliance.register import Activity

_PUBLIC_TASK = "Mission d'intérêt public (RGPD art. 6.1.e)"


class PanoramaData:
    kind = "panorama"
    label = "Besoins déclarés, projets déposés et notations du jury (Panorama IA)"
    tables = ("panorama_needs", "panorama_projects", "panorama_scores")

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, retention_days: int) -> None:
        self._sessions = sessions
        self.retention_days = retention_days

    def activity(self, periods: str, recipients: list[str]) -> Activity:
        return Activity("Recensement des besoins et appels à projets d'IA",
                        "Recenser les besoins des administrations, les rapprocher des solutions d'IA, instruire et "
                        "noter les projets déposés aux appels à projets", _PUBLIC_TASK,
                        ["Agents publics (déclarants, porteurs de projets, membres du jury)"],
                        ["Compte de l'agent, administration, description des besoins et des projets, notes et "
                         "commentaires du jury"], recipients, f"Besoins déclarés : {periods}")

    async def erase(self, session: AsyncSession, user_id: int) -> dict[str, int]:
        counts = {}
        for name, model, column in (("panorama_needs", PanoramaNeed, PanoramaNeed.author_id),
                                    ("panorama_projects", PanoramaProject, PanoramaProject.submitter_id),
                                    ("panorama_scores", PanoramaScore, PanoramaScore.juror_id)):
            result = await session.execute(update(model).where(column == user_id).values({column.key: None}))
            counts[name] = int(result.rowcount or 0)  # type: ignore[attr-defined]
        return counts

    async def export(self, user_id: int) -> AsyncIterator[tuple[str, AsyncIterator[dict[str, Any]]]]:
        yield "panorama_needs", self._rows(select(PanoramaNeed).where(PanoramaNeed.author_id == user_id),
                                           PanoramaNeed.id, ("id", "administration", "title", "irritant",
                                                             "sufferers", "volume", "data_available", "workaround",
                                                             "family", "created_at"))
        yield "panorama_projects", self._rows(select(PanoramaProject).where(PanoramaProject.submitter_id == user_id),
                                              PanoramaProject.id, ("id", "call_id", "administration", "title",
                                                                   "summary", "team", "data", "status", "created_at"))
        yield "panorama_scores", self._rows(select(PanoramaScore).where(PanoramaScore.juror_id == user_id),
                                            PanoramaScore.id, ("project_id", "marks", "total", "comment",
                                                               "created_at"))

    async def expire(self, cutoff: datetime) -> int:
        async with self._sessions() as session, session.begin():
            result = await session.execute(delete(PanoramaNeed).where(PanoramaNeed.created_at < cutoff))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def _rows(self, query: Any, key: Any, names: tuple[str, ...]) -> AsyncIterator[dict[str, Any]]:
        async for row in in_batches(self._sessions, query, key):
            yield {name: getattr(row, name) for name in names}
