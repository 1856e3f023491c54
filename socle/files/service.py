"""``/v1/files``: a person's own files (fine-tuning data, batch input...), kept under the data directory.

An upload is accepted as a document is (:mod:`socle.storage`): written and synced beside its final place, then
moved there inside the transaction that records it, so a file is on disk and listed, or neither. A
``fine-tune`` file is checked at upload (:mod:`socle.finetuning.validation`): ``processed``, or ``error`` with
its first line-numbered problems in ``status_details``; it is checked again against the chosen model when a job
is created. Deleting a file that a fine-tuning job or a batch not finished yet will read (or write) is refused
(409): a job resumed after a crash reads its file again; once the job or batch has ended, the file may go and its
history stays whole.
"""
from __future__ import annotations

import asyncio
import contextlib
import io
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.audit.service import Action, AuditTrail
from socle.db.models import UploadedFile, utcnow
from socle.errors import Conflict, InvalidRequest
from socle.files import store
from socle.finetuning.validation import estimate_tokens, validate_training_file
from socle.identity.permissions import Permission, Principal, require
from socle.storage import Staged, stage_stream

PURPOSES = ("fine-tune", "batch", "assistants", "user_data")
FINE_TUNE = "fine-tune"
BATCH_OUTPUT = "batch_output"


@dataclass(frozen=True)
class StoredFile:
    id: int
    owner_id: int
    filename: str
    purpose: str
    bytes: int
    created_at: datetime
    status: str  # processed | error
    status_details: str | None = None
    checks: dict[str, Any] | None = None  # a fine-tuning file's validation: examples, tokens, errors

    @classmethod
    def of(cls, row: UploadedFile) -> StoredFile:
        return cls(id=row.id, owner_id=row.owner_id, filename=row.filename, purpose=row.purpose, bytes=row.bytes,
                   created_at=row.created_at, status=row.status, status_details=row.status_details,
                   checks=row.checks)


class FileService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], audit: AuditTrail, directory: Path, *,
                 max_bytes: int, fine_tune_max_bytes: int, fine_tune_max_examples: int,
                 context_tokens: int) -> None:
        self._sessions = sessions
        self._audit = audit
        self.directory = directory
        self._max_bytes = max_bytes
        self._fine_tune_max_bytes = fine_tune_max_bytes
        self._fine_tune_max_examples = fine_tune_max_examples
        self._context_tokens = context_tokens

    def path(self, file_id: int) -> Path:
        return self.directory / str(file_id)

    def max_bytes(self, purpose: str) -> int:
        if purpose == BATCH_OUTPUT:  # written by the platform: as large as the batch's results are
            return 2**62
        return self._fine_tune_max_bytes if purpose == FINE_TUNE else self._max_bytes

    async def create(self, principal: Principal, filename: str, content: bytes | AsyncIterator[bytes],
                     purpose: str) -> StoredFile:
        require(principal, Permission.FILES_OWN)
        if purpose not in PURPOSES:
            raise InvalidRequest(f"Invalid purpose {purpose!r}: expected one of {', '.join(PURPOSES)}.",
                                 param="purpose", code="invalid_value")
        return await self._accept(principal, filename, content, purpose)

    async def create_output(self, owner: Principal, filename: str, content: bytes) -> int:
        """A file the platform writes for its owner (a batch's results, purpose ``batch_output``, which no upload
        may take); its id."""
        return (await self._accept(owner, filename, content, BATCH_OUTPUT)).id

    async def _accept(self, principal: Principal, filename: str, content: bytes | AsyncIterator[bytes],
                      purpose: str) -> StoredFile:
        name = Path(filename or "").name or "file"
        if len(name) > 500:  # the column's size
            raise InvalidRequest("The file's name has at most 500 characters.", param="file")
        blocks = _once(content) if isinstance(content, bytes) else content
        staged = await stage_stream(self.directory, blocks, max_bytes=self.max_bytes(purpose))
        try:
            status, details, checks = ("processed", None, None)
            if purpose == FINE_TUNE:
                status, details, checks = await asyncio.to_thread(self._check, staged)
            async with self._sessions() as session, session.begin():
                row = UploadedFile(owner_id=principal.user_id, filename=name, purpose=purpose, bytes=staged.size,
                                   content_hash=staged.sha256, status=status, status_details=details, checks=checks,
                                   created_at=utcnow())
                session.add(row)
                await session.flush()
                await self._audit.record_in(session, Action.FILE_UPLOADED, actor=principal,
                                            target=("file", row.id), details={"purpose": purpose,
                                                                              "bytes": staged.size, "status": status})
                os.replace(staged.path, self.path(row.id))  # before the commit: accepted means on disk
            return StoredFile.of(row)
        finally:
            with contextlib.suppress(FileNotFoundError):
                staged.path.unlink()

    def _check(self, staged: Staged) -> tuple[Literal["processed", "error"], str | None, dict[str, Any]]:
        """A fine-tuning file's format, sizes and (estimated) tokens; the model's own count comes with a job."""
        data = validate_training_file(staged.path.read_bytes(), count_tokens=estimate_tokens,
                                      max_examples=self._fine_tune_max_examples,
                                      max_bytes=self._fine_tune_max_bytes, context_tokens=self._context_tokens)
        checks = {"examples": len(data.examples), "tokens": data.tokens, "error_count": data.error_count,
                  "errors": [error.as_dict() for error in data.errors]}
        if data.errors:
            return "error", data.summary()[:2000], checks
        return "processed", None, checks

    async def get(self, principal: Principal, file_id: int) -> StoredFile:
        async with self._sessions() as session:
            return StoredFile.of(await store.owned(session, principal.user_id, file_id))

    async def content(self, principal: Principal, file_id: int) -> bytes:
        return await self.content_for_owner(principal.user_id, file_id)

    async def content_for_owner(self, owner_id: int, file_id: int) -> bytes:
        """A file's bytes, for a job that acts for its owner."""
        async with self._sessions() as session:
            await store.owned(session, owner_id, file_id)
        try:
            return await asyncio.to_thread(self.path(file_id).read_bytes)
        except FileNotFoundError:  # deleted meanwhile
            raise store.not_found(file_id) from None

    async def original(self, principal: Principal, file_id: int) -> tuple[StoredFile, Path]:
        """A file and where its bytes lie, to be sent without holding them in memory."""
        stored = await self.get(principal, file_id)
        path = self.path(file_id)
        if not await asyncio.to_thread(path.is_file):
            raise store.not_found(file_id)
        return stored, path

    async def list(self, principal: Principal, *, purpose: str | None = None, limit: int = 10000,
                   after: int | None = None, order: Literal["asc", "desc"] = "desc") -> list[StoredFile]:
        query = store.page(principal.user_id, purpose=purpose, limit=limit, after=after, descending=order == "desc")
        async with self._sessions() as session:
            return [StoredFile.of(row) for row in await session.scalars(query)]

    async def delete(self, principal: Principal, file_id: int) -> None:
        async with self._sessions() as session, session.begin():
            row = await store.owned(session, principal.user_id, file_id, for_update=True)
            users = await store.users_of(session, principal.user_id, file_id)
            if users:
                raise Conflict(f"File {store.public_id(file_id)} is used by {users[0]} which has not finished: "
                               "cancel it or wait for its end.", param="file_id", code="file_in_use")
            await session.delete(row)
            await self._audit.record_in(session, Action.FILE_DELETED, actor=principal, target=("file", file_id),
                                        details={"purpose": row.purpose})
        await asyncio.to_thread(self.path(file_id).unlink, missing_ok=True)

    async def discard_output(self, owner_id: int, file_id: int) -> None:
        """Remove a result file the platform wrote for a batch that no longer names it (the batch is gone, its
        owner erased, or another worker ended it): no row or bytes are left that nobody can reach. Not audited as
        the owner's deletion: the owner did not ask for it."""
        async with self._sessions() as session, session.begin():
            await session.execute(delete(UploadedFile).where(UploadedFile.id == file_id,
                                                             UploadedFile.owner_id == owner_id,
                                                             UploadedFile.purpose == BATCH_OUTPUT))
        await asyncio.to_thread(self.path(file_id).unlink, missing_ok=True)

    async def owned_ids(self, session: AsyncSession, owner_id: int) -> list[int]:
        """The ids of a person's files (erasure removes their bytes once their rows are gone)."""
        return list(await session.scalars(select(UploadedFile.id).where(UploadedFile.owner_id == owner_id)))


async def _once(content: bytes) -> AsyncIterator[bytes]:
    source = io.BytesIO(content)
    while block := source.read(1024 * 1024):
        yield block
