"""Stored responses, each its owner's alone, under the platform's duties towards people.

Ownership is a condition of every query (``StoredResponse.owner_id == actor.user_id``): another user's response
answers 404 as if it did not exist, admins included (a response holds its author's words, as a conversation
does). The store is also one kind of :class:`~socle.apps.base.PersonalData`: a person's responses go when they
are erased and come in the export of their data; every response goes once older than the conversations'
retention period; the register lists the activity.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.compliance.export import in_batches
from socle.compliance.register import Activity
from socle.db.models import StoredResponse
from socle.errors import NotFound
from socle.identity.permissions import Principal

_PUBLIC_TASK = "Mission d'intérêt public (RGPD art. 6.1.e)"


def _owned(actor: Principal) -> ColumnElement[bool]:
    return StoredResponse.owner_id == actor.user_id


class ResponseStore:
    kind = "responses"
    label = "Réponses des modèles gardées pour les applications"
    tables = ("responses",)

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, retention_days: int) -> None:
        self._sessions = sessions
        self.retention_days = retention_days

    async def add(self, response: StoredResponse) -> StoredResponse:
        async with self._sessions() as session, session.begin():
            session.add(response)
        return response

    async def get(self, actor: Principal, response_id: int) -> StoredResponse:
        async with self._sessions() as session:
            response = await session.scalar(select(StoredResponse).where(StoredResponse.id == response_id,
                                                                         _owned(actor)))
        if response is None:
            raise NotFound(f"Response with id 'resp_{response_id}' not found.", param="response_id")
        return response

    async def finish(self, actor: Principal, response_id: int, *, status: str, output: list[dict[str, Any]],
                     usage: dict[str, Any] | None, error: dict[str, Any] | None) -> None:
        """What a streamed response ended with."""
        async with self._sessions() as session, session.begin():
            await session.execute(update(StoredResponse).where(StoredResponse.id == response_id, _owned(actor))
                                  .values(status=status, output=output, usage=usage, error=error))

    async def delete(self, actor: Principal, response_id: int) -> None:
        async with self._sessions() as session, session.begin():
            result = await session.execute(delete(StoredResponse).where(StoredResponse.id == response_id,
                                                                        _owned(actor)))
        if not result.rowcount:  # type: ignore[attr-defined]
            raise NotFound(f"Response with id 'resp_{response_id}' not found.", param="response_id")

    # ---- the platform's duties towards people (PersonalData) ------------------------------------------

    def activity(self, periods: str, recipients: list[str]) -> Activity:
        return Activity("Réponses gardées pour les applications", "Garder les échanges d'une application avec un "
                        "modèle pour qu'elle puisse les poursuivre (API Responses)", _PUBLIC_TASK,
                        ["Agents publics qui utilisent les applications", "Personnes citées dans les échanges"],
                        ["Consignes, messages, appels d'outils et réponses des modèles, date"], recipients,
                        f"Réponses : {periods}")

    async def erase(self, session: AsyncSession, user_id: int) -> dict[str, int]:
        result = await session.execute(delete(StoredResponse).where(StoredResponse.owner_id == user_id))
        return {"responses": int(result.rowcount or 0)}  # type: ignore[attr-defined]

    async def export(self, user_id: int) -> AsyncIterator[tuple[str, AsyncIterator[dict[str, Any]]]]:
        yield "responses", self._rows(user_id)

    async def expire(self, cutoff: datetime) -> int:
        async with self._sessions() as session, session.begin():
            result = await session.execute(delete(StoredResponse).where(StoredResponse.created_at < cutoff))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def _rows(self, user_id: int) -> AsyncIterator[dict[str, Any]]:
        query = select(StoredResponse).where(StoredResponse.owner_id == user_id)
        async for row in in_batches(self._sessions, query, StoredResponse.id):
            yield {"id": f"resp_{row.id}", **{name: getattr(row, name) for name in (
                "model", "status", "instructions", "input_items", "output", "usage", "parameters", "error",
                "created_at")}}
