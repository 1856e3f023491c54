"""The job that runs a batch (kind ``batch.run``, pool ``batches``: few workers, few requests at once, so that
interactive calls and ingestion keep the backends first).

Each request goes through :class:`~socle.inference.service.InferenceService` as the caller's own API call would,
with the principal of the batch's owner and key: visibility, quotas, usage, cost and carbon are the API's. Its
result is kept at once under its line number (a unique row): a job taken up again after a crash (kill -9: its
lease runs out) runs only the lines without a result, so every request runs and appears once. At the end the
results are written as two files of the owner (purpose ``batch_output``): the responses, and the errors.

Quotas: a rate limit (requests or tokens per minute or day) refuses a request for now: the job waits as long as
the limit says (at most :data:`RATE_LIMIT_WAIT_S` at a time) and runs it again, until the batch's window ends;
a spent budget (``insufficient_quota``) will not come back within the window: the request is recorded as an error
(HTTP 429 with the API's envelope). Requests still not run when the window ends are recorded as ``batch_expired``
errors and the batch is ``expired``, as OpenAI does.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from socle.batches import input as batch_input
from socle.batches.store import TERMINAL, BatchStore
from socle.db.models import Batch, utcnow
from socle.endpoints import Endpoint, Json
from socle.errors import (  # the output file speaks as the API would have
    NotFound,
    RateLimited,
    SocleError,
    Unauthenticated,
    error_payload,
    status_of,
)
from socle.identity.permissions import Principal
from socle.jobs.kinds import Kind, Payload

log = logging.getLogger("socle.batches")
RUN = "batch.run"
RATE_LIMIT_WAIT_S = 30.0
_RUNNING = ("validating", "in_progress", "cancelling", "finalizing")  # not finished yet


class _Gone(Exception):
    """The batch was erased or ended elsewhere while its results were being written."""


@dataclasses.dataclass(frozen=True)
class Collaborators:
    """What the runner needs of the platform's services."""

    read_input: Callable[[int, int], Awaitable[bytes]]  # (owner, file) -> bytes
    write_output: Callable[[Principal, str, bytes], Awaitable[int]]  # (owner, filename, bytes) -> file id
    discard_output: Callable[[int, int], Awaitable[None]]  # (owner, file) -> None: a result file no batch names
    principal_of: Callable[[int], Awaitable[Principal]]
    call: Callable[[Principal, Endpoint, Json], Awaitable[Json]]  # InferenceService.call


class BatchRunner:
    def __init__(self, batches: BatchStore, services: Collaborators, *, concurrency: int, max_requests: int) -> None:
        self._batches = batches
        self._services = services
        self._concurrency = concurrency
        self._max_requests = max_requests

    @property
    def kinds(self) -> list[Kind]:
        return [Kind(RUN, self.run, self.give_up)]

    async def run(self, payload: Payload) -> None:
        batch = await self._batches.load(payload["batch"])
        if batch is None or batch.status in TERMINAL:
            return  # erased, or finished before a crash let its job end
        try:
            content = await self._services.read_input(batch.owner_id, batch.input_file_id)
            principal = dataclasses.replace(await self._services.principal_of(batch.owner_id), key_id=batch.key_id)
        except (NotFound, Unauthenticated) as exc:
            await self._fail(batch, [batch_input.LineError(None, exc.code or "invalid_request", exc.message)])
            return
        requests, errors = batch_input.parse(content, batch.endpoint, max_requests=self._max_requests)
        if errors:
            await self._fail(batch, errors)
            return
        await self._batches.change(batch.id, total=len(requests))
        if batch.status == "validating":
            await self._batches.change(batch.id, only_if=("validating",), status="in_progress", in_progress_at=utcnow())
        done = await self._batches.done_lines(batch.id)
        pending = [request for request in requests if request.line not in done]
        status = await self._run_all(batch, principal, pending)
        if status is not None:
            with contextlib.suppress(_Gone):
                await self._finalize(batch, principal, status, pending)

    async def _run_all(self, batch: Batch, principal: Principal, pending: list[batch_input.Request]) -> str | None:
        """Run the requests, a few at a time; the batch's end state: completed, cancelled or expired (None: the
        batch is gone, its owner erased)."""
        endpoint = batch_input.ENDPOINTS[batch.endpoint]
        for start in range(0, len(pending), self._concurrency):
            current = await self._batches.load(batch.id)
            if current is None:
                return None
            if current.status == "cancelling":
                return "cancelled"
            if utcnow() >= batch.expires_at:
                return "expired"
            group = pending[start:start + self._concurrency]
            await asyncio.gather(*(self._one(batch, principal, endpoint, request) for request in group))
        return "completed"

    async def _one(self, batch: Batch, principal: Principal, endpoint: Endpoint,
                   request: batch_input.Request) -> None:
        record_id = f"batch_req_{batch.id}_{request.line}"
        while True:
            try:
                answer = await self._services.call(principal, endpoint, dict(request.body))
            except RateLimited as exc:
                if exc.code != "insufficient_quota" and utcnow() < batch.expires_at:
                    await asyncio.sleep(min(exc.retry_after_s, RATE_LIMIT_WAIT_S))
                    continue
                await self._batches.add_result(batch.id, request.line, False, _error(record_id, request, exc))
                return
            except SocleError as exc:
                await self._batches.add_result(batch.id, request.line, False, _error(record_id, request, exc))
                return
            await self._batches.add_result(batch.id, request.line, True, {
                "id": record_id, "custom_id": request.custom_id,
                "response": {"status_code": 200, "request_id": record_id, "body": answer}, "error": None})
            return

    async def _finalize(self, batch: Batch, principal: Principal, status: str,
                        pending: list[batch_input.Request]) -> None:
        """Write the results as the owner's files, then end the batch (its kept results go).

        No result file is left that no batch names: each file's id is recorded on the batch as soon as it is
        written (a job taken up again after a crash here reuses it, and a file still named by a batch not
        finished cannot be deleted), and a file written for a batch that is gone meanwhile (its owner erased) or
        was ended by another worker is removed at once."""
        if not await self._batches.change(batch.id, only_if=_RUNNING, finalizing_at=utcnow(),
                                          **({"status": "finalizing"} if status == "completed" else {})):
            return  # erased, or ended by another worker after a lost lease
        results = await self._batches.results(batch.id)
        outputs = [result.record for result in results if result.succeeded]
        errors = [result.record for result in results if not result.succeeded]
        expired = 0
        if status == "expired":
            done = {result.line for result in results}
            for request in pending:
                if request.line not in done:
                    expired += 1
                    errors.append({"id": f"batch_req_{batch.id}_{request.line}", "custom_id": request.custom_id,
                                   "response": None, "error": {"code": "batch_expired", "message":
                                                               "This request could not be executed before the "
                                                               "completion window expired."}})
        current = await self._batches.load(batch.id)
        if current is None:
            return
        written: list[int] = []
        output_id = current.output_file_id
        error_id = current.error_file_id
        if output_id is None:
            output_id = await self._write(batch, principal, "output_file_id", "output", outputs, written)
        if error_id is None:
            error_id = await self._write(batch, principal, "error_file_id", "errors", errors, written)
        now = utcnow()
        stamp = {"completed": "completed_at", "cancelled": "cancelled_at", "expired": "expired_at"}[status]
        values: dict[str, Any] = {"status": status, stamp: now, "output_file_id": output_id,
                                  "error_file_id": error_id}
        if expired:
            values["failed"] = len(errors)
        if not await self._batches.finish(batch.id, only_if=_RUNNING, **values):
            await self._discard(batch, written)

    async def _write(self, batch: Batch, principal: Principal, column: str, name: str,
                     lines: list[dict[str, Any]], written: list[int]) -> int | None:
        """A result file of the batch, its id recorded on the batch at once (None: nothing to write)."""
        if not lines:
            return None
        file_id = await self._services.write_output(principal, f"batch_{batch.id}_{name}.jsonl",
                                                    b"".join(orjson.dumps(line) + b"\n" for line in lines))
        written.append(file_id)
        if not await self._batches.change(batch.id, only_if=_RUNNING, **{column: file_id}):
            await self._discard(batch, written)
            raise _Gone
        return file_id

    async def _discard(self, batch: Batch, files: list[int]) -> None:
        for file_id in files:
            await self._services.discard_output(batch.owner_id, file_id)
        files.clear()

    async def _fail(self, batch: Batch, errors: list[batch_input.LineError]) -> None:
        await self._batches.change(batch.id, only_if=_RUNNING, status="failed", failed_at=utcnow(),
                                   errors=[error.as_dict() for error in errors])

    async def give_up(self, payload: Payload, error: str) -> None:
        batch = await self._batches.load(payload["batch"])
        if batch is not None and batch.status not in TERMINAL:
            log.warning("batch %d failed for good: %s", batch.id, error)
            await self._fail(batch, [batch_input.LineError(None, "batch_failed", error[:500])])


def _error(record_id: str, request: batch_input.Request, exc: SocleError) -> dict[str, Any]:
    """A request's failure as the API would have answered it: its status and OpenAI's error envelope."""
    return {"id": record_id, "custom_id": request.custom_id,
            "response": {"status_code": status_of(exc), "request_id": record_id, "body": error_payload(exc)},
            "error": None}
