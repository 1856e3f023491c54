"""``/v1/batches``: a person's batches, created from one of their ``batch`` files, read, listed and cancelled.

Creating checks what can be checked at once (the file is the caller's and of purpose ``batch``, the endpoint and
the window are served) and enqueues the batch's job in the same transaction: accepted means it will run. The
lines themselves are checked by the job (status ``validating``), as OpenAI does. Cancelling is a mark on the row
that the job reads between requests.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.batches import store
from socle.batches.input import ENDPOINTS
from socle.batches.runner import RUN
from socle.db.models import Batch, utcnow
from socle.errors import Conflict, InvalidRequest
from socle.files.service import FileService
from socle.identity.permissions import Permission, Principal, require
from socle.jobs.kinds import Pool
from socle.jobs.queue import JobQueue

WINDOWS = {"24h": timedelta(hours=24)}


class BatchService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], queue: JobQueue, files: FileService,
                 batch_store: store.BatchStore, pools: list[Pool]) -> None:
        self._sessions = sessions
        self._queue = queue
        self._files = files
        self.store = batch_store  # the personal data the batches are
        self.pools = pools

    async def create(self, principal: Principal, *, input_file_id: int, endpoint: str, completion_window: str,
                     metadata: dict[str, str] | None) -> Batch:
        require(principal, Permission.FILES_OWN)
        if endpoint not in ENDPOINTS:
            raise InvalidRequest(f"Invalid endpoint {endpoint!r}: expected one of {', '.join(ENDPOINTS)}.",
                                 param="endpoint", code="invalid_value")
        if completion_window not in WINDOWS:
            raise InvalidRequest(f"Invalid completion_window {completion_window!r}: expected '24h'.",
                                 param="completion_window", code="invalid_value")
        source = await self._files.get(principal, input_file_id)
        if source.purpose != "batch":
            raise InvalidRequest(f"The input file must have the purpose 'batch', not {source.purpose!r}.",
                                 param="input_file_id", code="invalid_value")
        now = utcnow()
        async with self._sessions() as session, session.begin():
            row = Batch(owner_id=principal.user_id, key_id=principal.key_id, endpoint=endpoint,
                        input_file_id=input_file_id, completion_window=completion_window, status="validating",
                        batch_metadata=metadata, total=0, completed=0, failed=0, created_at=now,
                        expires_at=now + WINDOWS[completion_window])
            session.add(row)
            await session.flush()
            await self._queue.enqueue(RUN, {"batch": row.id}, dedupe_key=f"batch:{row.id}", session=session)
        return row

    async def get(self, principal: Principal, batch_id: int) -> Batch:
        async with self._sessions() as session:
            return await store.owned(session, principal.user_id, batch_id)

    async def list(self, principal: Principal, *, limit: int, after: int | None) -> list[Batch]:
        async with self._sessions() as session:
            return list(await session.scalars(store.page(principal.user_id, limit=limit, after=after)))

    async def cancel(self, principal: Principal, batch_id: int) -> Batch:
        """``cancelling`` at once; the job lets the requests in flight finish, runs no other, and writes what is
        done (then ``cancelled``)."""
        async with self._sessions() as session, session.begin():
            row = await store.owned(session, principal.user_id, batch_id, for_update=True)
            if row.status in ("cancelling", "cancelled"):
                return row
            if row.status not in ("validating", "in_progress"):
                raise Conflict(f"Cannot cancel a batch with status '{row.status}'.", param="batch_id",
                               code="batch_not_cancellable")
            row.status, row.cancelling_at = "cancelling", utcnow()
        return row
