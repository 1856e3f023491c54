"""The fine-tuning jobs, their events and checkpoints in the metadata store.

Every read a caller makes names the owner in the query itself: another person's job is not found (404), never
refused. The job runner reads and writes by id alone: it acts for the job's owner.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.db.models import FineTuningCheckpoint, FineTuningEvent, FineTuningJob, User, utcnow
from socle.errors import NotFound

TERMINAL = ("succeeded", "failed", "cancelled")


def job_not_found(job_id: int | str) -> NotFound:
    shown = job_id if isinstance(job_id, str) else f"ftjob-{job_id}"
    return NotFound(f"No fine-tuning job found with id '{shown}'.", param="fine_tuning_job_id",
                    code="fine_tuning_job_not_found")


class FineTuningStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    # ---- what the owner reads -----------------------------------------------------------------------------------

    async def owned(self, owner_id: int, job_id: int) -> FineTuningJob:
        async with self._sessions() as session:
            job = await session.scalar(select(FineTuningJob).where(FineTuningJob.id == job_id,
                                                                   FineTuningJob.owner_id == owner_id))
        if job is None:
            raise job_not_found(job_id)
        return job

    async def list(self, owner_id: int, *, limit: int, after: int | None) -> list[FineTuningJob]:
        """Newest first, as OpenAI lists them; ``after``: the last job of the previous page."""
        query = select(FineTuningJob).where(FineTuningJob.owner_id == owner_id)
        if after is not None:
            query = query.where(FineTuningJob.id < after)
        async with self._sessions() as session:
            return list(await session.scalars(query.order_by(FineTuningJob.id.desc()).limit(limit)))

    async def events(self, owner_id: int, job_id: int, *, limit: int, after: int | None) -> list[FineTuningEvent]:
        """Newest first; ``after``: the last event of the previous page."""
        await self.owned(owner_id, job_id)
        query = select(FineTuningEvent).where(FineTuningEvent.job_id == job_id)
        if after is not None:
            query = query.where(FineTuningEvent.id < after)
        async with self._sessions() as session:
            return list(await session.scalars(query.order_by(FineTuningEvent.id.desc()).limit(limit)))

    async def checkpoints(self, owner_id: int, job_id: int, *, limit: int,
                          after: int | None) -> list[FineTuningCheckpoint]:
        await self.owned(owner_id, job_id)
        query = select(FineTuningCheckpoint).where(FineTuningCheckpoint.job_id == job_id)
        if after is not None:
            query = query.where(FineTuningCheckpoint.id < after)
        async with self._sessions() as session:
            return list(await session.scalars(query.order_by(FineTuningCheckpoint.id.desc()).limit(limit)))

    async def request_cancel(self, owner_id: int, job_id: int) -> FineTuningJob:
        """Mark the job to be cancelled: one not started yet is cancelled at once; a running one is stopped by its
        worker, which reads the mark (whatever process it runs in)."""
        async with self._sessions() as session, session.begin():
            job = await session.scalar(select(FineTuningJob).where(FineTuningJob.id == job_id,
                                                                   FineTuningJob.owner_id == owner_id))
            if job is None:
                raise job_not_found(job_id)
            if job.status in TERMINAL:
                return job
            job.cancel_requested = True
            if job.status in ("validating_files", "queued"):
                job.status, job.finished_at = "cancelled", utcnow()
                session.add(FineTuningEvent(job_id=job.id, message="Fine-tuning job cancelled.",
                                            created_at=utcnow()))
        return job

    # ---- what the runner does -----------------------------------------------------------------------------------

    async def get(self, job_id: int) -> FineTuningJob | None:
        async with self._sessions() as session:
            return await session.get(FineTuningJob, job_id)

    async def owner_email(self, owner_id: int) -> str:
        async with self._sessions() as session:
            return str(await session.scalar(select(User.email).where(User.id == owner_id)) or "")

    async def cancel_requested(self, job_id: int) -> bool:
        async with self._sessions() as session:
            return bool(await session.scalar(select(FineTuningJob.cancel_requested)
                                             .where(FineTuningJob.id == job_id)))

    async def move(self, job_id: int, status: str, *, message: str | None = None, level: str = "info",
                   only_from: Sequence[str] | None = None, **fields: Any) -> bool:
        """Set the job's status (and ``fields``), with an event saying so; with ``only_from``, only when the job is
        in one of those statuses (False otherwise: a cancel came first)."""
        values: dict[str, Any] = {"status": status, **fields}
        if status in TERMINAL:
            values.setdefault("finished_at", utcnow())
        query = update(FineTuningJob).where(FineTuningJob.id == job_id)
        if only_from is not None:
            query = query.where(FineTuningJob.status.in_(only_from))
        async with self._sessions() as session, session.begin():
            moved = (await session.execute(query.values(**values))).rowcount == 1  # type: ignore[attr-defined]
            if moved and message:
                session.add(FineTuningEvent(job_id=job_id, level=level, message=message, created_at=utcnow()))
        return moved

    async def event(self, job_id: int, message: str, *, level: str = "info", kind: str = "message",
                    data: Mapping[str, Any] | None = None) -> None:
        async with self._sessions() as session, session.begin():
            session.add(FineTuningEvent(job_id=job_id, level=level, type=kind, message=message,
                                        data=dict(data) if data is not None else None, created_at=utcnow()))

    async def checkpoint(self, job_id: int, step: int, path: str, train_loss: float,
                         valid_loss: float | None) -> None:
        """Record a checkpoint once (a resumed training saves the same steps again)."""
        try:
            async with self._sessions() as session, session.begin():
                session.add(FineTuningCheckpoint(job_id=job_id, step=step, path=path, train_loss=train_loss,
                                                 valid_loss=valid_loss, created_at=utcnow()))
        except IntegrityError:
            pass

    async def last_checkpoint(self, job_id: int) -> FineTuningCheckpoint | None:
        async with self._sessions() as session:
            return await session.scalar(select(FineTuningCheckpoint).where(FineTuningCheckpoint.job_id == job_id)
                                        .order_by(FineTuningCheckpoint.step.desc()).limit(1))

    async def last_metrics(self, job_id: int) -> dict[str, Any] | None:
        """The last progress the job reported (its final losses go into the model's card)."""
        async with self._sessions() as session:
            data = await session.scalar(select(FineTuningEvent.data).where(
                FineTuningEvent.job_id == job_id, FineTuningEvent.type == "metrics")
                .order_by(FineTuningEvent.id.desc()).limit(1))
        return dict(data) if data else None
