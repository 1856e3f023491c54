"""The feedback app's personal data, under the platform's duties towards people: a person's datasets and
analyses go when they are erased and come in the export of their data; every dataset goes, with its
analyses, once older than ``SOCLE_FEEDBACK_RETENTION_DAYS``; the register lists the activity."""
from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.apps.feedback.models import FeedbackAnalysis, FeedbackDataset, FeedbackMessage
from socle.compliance.export import in_batches
from socle.compliance.register import Activity

_PUBLIC_TASK = "Mission d'intérêt public (RGPD art. 6.1.e)"


class FeedbackData:
    """Datasets of citizens' messages (their authors are the persons concerned) and the analyses of them; a
    dataset and its analyses belong to the agent who imported it."""

    kind = "feedback"
    label = "Jeux d'avis usagers et leurs analyses"
    tables = ("feedback_datasets", "feedback_messages", "feedback_analyses", "feedback_annotations")

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, retention_days: int) -> None:
        self._sessions = sessions
        self.retention_days = retention_days

    def activity(self, periods: str, recipients: list[str]) -> Activity:
        return Activity("Analyse des avis des usagers", "Caractériser les avis laissés sur les services publics "
                        "(thèmes, tonalité, urgence) ; les données personnelles détectées sont pseudonymisées",
                        _PUBLIC_TASK, ["Usagers des services publics (auteurs des avis)"],
                        ["Texte des avis, service concerné, date, note"], recipients, f"Jeux d'avis : {periods}")

    async def erase(self, session: AsyncSession, user_id: int) -> dict[str, int]:
        """Their analyses, then their datasets (with the messages and the annotations, by cascade)."""
        analyses = await session.execute(delete(FeedbackAnalysis).where(FeedbackAnalysis.owner_id == user_id))
        datasets = await session.execute(delete(FeedbackDataset).where(FeedbackDataset.owner_id == user_id))
        return {"feedback_datasets": int(datasets.rowcount or 0),  # type: ignore[attr-defined]
                "feedback_analyses": int(analyses.rowcount or 0)}  # type: ignore[attr-defined]

    async def export(self, user_id: int) -> AsyncIterator[tuple[str, AsyncIterator[dict[str, Any]]]]:
        yield "feedback_datasets", self._datasets(user_id)
        yield "feedback_analyses", self._analyses(user_id)

    async def expire(self, cutoff: datetime) -> int:
        async with self._sessions() as session, session.begin():
            result = await session.execute(delete(FeedbackDataset).where(FeedbackDataset.created_at < cutoff))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def _datasets(self, user_id: int) -> AsyncIterator[dict[str, Any]]:
        query = select(FeedbackDataset).where(FeedbackDataset.owner_id == user_id)
        async for dataset in in_batches(self._sessions, query, FeedbackDataset.id):
            yield {**_columns(dataset, "id", "name", "source", "source_format", "messages", "labelled", "created_at"),
                   "items": self._messages(dataset.id)}

    async def _messages(self, dataset_id: int) -> AsyncIterator[dict[str, Any]]:
        query = select(FeedbackMessage).where(FeedbackMessage.dataset_id == dataset_id)
        async for message in in_batches(self._sessions, query, FeedbackMessage.id):
            yield _columns(message, "external_id", "text", "written_on", "service", "channel", "rating", "labels",
                           "extra")

    async def _analyses(self, user_id: int) -> AsyncIterator[dict[str, Any]]:
        query = select(FeedbackAnalysis).where(FeedbackAnalysis.owner_id == user_id)
        async for analysis in in_batches(self._sessions, query, FeedbackAnalysis.id):
            yield _columns(analysis, "id", "dataset_id", "engine", "model", "options", "status", "error", "total",
                           "done", "failed", "tokens", "topics", "created_at", "started_at", "finished_at")


def _columns(row: Any, *names: str) -> dict[str, Any]:
    return {name: getattr(row, name) for name in names}
