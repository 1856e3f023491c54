"""The rows of ``/v1/files``. Every query names the owner: another person's file is not found, never refused."""
from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from socle.db.models import Batch, FineTuningJob, UploadedFile
from socle.errors import NotFound

ACTIVE_JOBS = ("validating_files", "queued", "running")
"""Statuses of a fine-tuning job that will still read its files (a restarted one reads them again)."""
ACTIVE_BATCHES = ("validating", "in_progress", "finalizing", "cancelling")
"""Statuses of a batch that will still read its input (a restarted one reads it again) or write its results."""


def public_id(file_id: int) -> str:
    return f"file-{file_id}"


def not_found(file_id: int | str) -> NotFound:
    shown = file_id if isinstance(file_id, str) else public_id(file_id)
    return NotFound(f"No such File object: {shown}", param="file_id", code="file_not_found")


async def owned(session: AsyncSession, owner_id: int, file_id: int, *, for_update: bool = False) -> UploadedFile:
    query = select(UploadedFile).where(UploadedFile.id == file_id, UploadedFile.owner_id == owner_id)
    row = await session.scalar(query.with_for_update() if for_update else query)
    if row is None:
        raise not_found(file_id)
    return row


def page(owner_id: int, *, purpose: str | None, limit: int, after: int | None,
         descending: bool) -> Select[tuple[UploadedFile]]:
    """A page of the owner's files: newest first (``descending``) or oldest first, after the ``after`` id."""
    query = select(UploadedFile).where(UploadedFile.owner_id == owner_id)
    if purpose is not None:
        query = query.where(UploadedFile.purpose == purpose)
    if after is not None:
        query = query.where(UploadedFile.id < after if descending else UploadedFile.id > after)
    order = UploadedFile.id.desc() if descending else UploadedFile.id.asc()
    return query.order_by(order).limit(limit)


async def users_of(session: AsyncSession, owner_id: int, file_id: int) -> Sequence[str]:
    """What of the owner's, not finished yet, still reads or writes the file: fine-tuning jobs (training or
    validation file) and batches (input, output or error file), by their public ids."""
    jobs = await session.scalars(select(FineTuningJob.id).where(
        FineTuningJob.owner_id == owner_id, FineTuningJob.status.in_(ACTIVE_JOBS),
        (FineTuningJob.training_file_id == file_id) | (FineTuningJob.validation_file_id == file_id)))
    batches = await session.scalars(select(Batch.id).where(
        Batch.owner_id == owner_id, Batch.status.in_(ACTIVE_BATCHES),
        (Batch.input_file_id == file_id) | (Batch.output_file_id == file_id) | (Batch.error_file_id == file_id)))
    return [f"fine-tuning job ftjob-{job}" for job in jobs] + [f"batch batch_{batch}" for batch in batches]
