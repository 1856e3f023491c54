"""The rows of ``/v1/batches``. Every query a person makes names the owner: another person's batch is not found,
never refused. The store is also one kind of :class:`~socle.apps.base.PersonalData`: a person's batches go when
they are erased (their files go with their files) and come in the export of their data; a finished batch goes
once older than the conversations' retention period (its files stay, as the person's own)."""
from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.compliance.export import in_batches
from socle.compliance.register import Activity
from socle.db.models import Batch, BatchResult
from socle.errors import NotFound

TERMINAL = ("failed", "completed", "expired", "cancelled")
_PUBLIC_TASK = "Mission d'intérêt public (RGPD art. 6.1.e)"


def public_id(batch_id: int) -> str:
    return f"batch_{batch_id}"


def not_found(batch_id: int | str) -> NotFound:
    shown = batch_id if isinstance(batch_id, str) else public_id(batch_id)
    return NotFound(f"No batch found with id '{shown}'.", param="batch_id", code="batch_not_found")


async def owned(session: AsyncSession, owner_id: int, batch_id: int, *, for_update: bool = False) -> Batch:
    query = select(Batch).where(Batch.id == batch_id, Batch.owner_id == owner_id)
    row = await session.scalar(query.with_for_update() if for_update else query)
    if row is None:
        raise not_found(batch_id)
    return row


def page(owner_id: int, *, limit: int, after: int | None) -> Select[tuple[Batch]]:
    """A page of the owner's batches, newest first, after the ``after`` id."""
    query = select(Batch).where(Batch.owner_id == owner_id)
    if after is not None:
        query = query.where(Batch.id < after)
    return query.order_by(Batch.id.desc()).limit(limit)


class BatchStore:
    kind = "batches"
    label = "Lots de demandes aux modèles"
    tables = ("batches", "batch_results")

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, retention_days: int) -> None:
        self._sessions = sessions
        self.retention_days = retention_days

    async def load(self, batch_id: int) -> Batch | None:
        async with self._sessions() as session:
            return await session.get(Batch, batch_id)

    async def change(self, batch_id: int, *, only_if: tuple[str, ...] | None = None, **values: Any) -> bool:
        """Write these columns; with ``only_if``, only while the batch's status is one of those (False if not)."""
        query = update(Batch).where(Batch.id == batch_id)
        if only_if is not None:
            query = query.where(Batch.status.in_(only_if))
        async with self._sessions() as session, session.begin():
            result = await session.execute(query.values(**values))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def done_lines(self, batch_id: int) -> set[int]:
        async with self._sessions() as session:
            return set(await session.scalars(select(BatchResult.line).where(BatchResult.batch_id == batch_id)))

    async def add_result(self, batch_id: int, line: int, succeeded: bool, record: dict[str, Any]) -> None:
        """Keep a request's result and count it, in one transaction: a result already kept (a request run twice
        by two workers after a lost lease) is neither kept nor counted again."""
        counter = Batch.completed if succeeded else Batch.failed
        try:
            async with self._sessions() as session, session.begin():
                session.add(BatchResult(batch_id=batch_id, line=line, succeeded=succeeded, record=record))
                await session.flush()
                await session.execute(update(Batch).where(Batch.id == batch_id).values({counter: counter + 1}))
        except IntegrityError:
            return

    async def results(self, batch_id: int) -> list[BatchResult]:
        async with self._sessions() as session:
            return list(await session.scalars(select(BatchResult).where(BatchResult.batch_id == batch_id)
                                               .order_by(BatchResult.line)))

    async def finish(self, batch_id: int, *, only_if: tuple[str, ...], **values: Any) -> bool:
        """The batch's last change, only while its status is one of ``only_if``; its results are in its files
        now. False if the batch is gone or was ended meanwhile (nothing changed)."""
        async with self._sessions() as session, session.begin():
            result = await session.execute(update(Batch).where(Batch.id == batch_id, Batch.status.in_(only_if))
                                           .values(**values))
            if not result.rowcount:  # type: ignore[attr-defined]
                return False
            await session.execute(delete(BatchResult).where(BatchResult.batch_id == batch_id))
        return True

    # ---- the platform's duties towards people (PersonalData) ------------------------------------------

    def activity(self, periods: str, recipients: list[str]) -> Activity:
        return Activity("Lots de demandes aux modèles", "Faire traiter par un modèle de nombreuses demandes d'un "
                        "coup (classer des messages, indexer des textes)", _PUBLIC_TASK,
                        ["Agents publics qui déposent les lots", "Personnes citées dans les demandes"],
                        ["Demandes et réponses des modèles (dans les fichiers du déposant), état du lot, date"],
                        recipients, f"Lots : {periods}")

    async def erase(self, session: AsyncSession, user_id: int) -> dict[str, int]:
        result = await session.execute(delete(Batch).where(Batch.owner_id == user_id))
        return {"batches": int(result.rowcount or 0)}  # type: ignore[attr-defined]

    async def export(self, user_id: int) -> AsyncIterator[tuple[str, AsyncIterator[dict[str, Any]]]]:
        yield "batches", self._rows(user_id)

    async def expire(self, cutoff: datetime) -> int:
        async with self._sessions() as session, session.begin():
            result = await session.execute(delete(Batch).where(Batch.created_at < cutoff,
                                                               Batch.status.in_(TERMINAL)))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def _rows(self, user_id: int) -> AsyncIterator[dict[str, Any]]:
        query = select(Batch).where(Batch.owner_id == user_id)
        async for row in in_batches(self._sessions, query, Batch.id):
            yield {"id": public_id(row.id), "metadata": row.batch_metadata, **{name: getattr(row, name) for name in (
                "endpoint", "status", "input_file_id", "output_file_id", "error_file_id", "total", "completed",
                "failed", "errors", "created_at")}}
