"""``/v1/batches`` (OpenAI-compatible): create a batch from a ``batch`` file, read, list and cancel one's own."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from socle.api.deps import Caller, platform
from socle.api.schemas import unix_time
from socle.api.strict import StrictRoute
from socle.batches.service import BatchService
from socle.batches.store import not_found, public_id
from socle.db.integers import MAX_INTEGER
from socle.db.models import Batch
from socle.errors import InvalidRequest, NotFound
from socle.files.store import not_found as file_not_found
from socle.files.store import public_id as file_id

router = APIRouter(prefix="/v1", tags=["batches"], route_class=StrictRoute)


async def _batches(request: Request) -> BatchService:
    return platform(request).batches


Batches = Annotated[BatchService, Depends(_batches)]
MetadataKey = Annotated[str, StringConstraints(max_length=64)]
MetadataValue = Annotated[str, StringConstraints(max_length=512)]


class BatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input_file_id: str = Field(description="A file of purpose 'batch': one request per line (JSONL)")
    endpoint: str = Field(description="/v1/chat/completions, /v1/embeddings, /v1/completions or /v1/rerank")
    completion_window: str = Field(description="'24h'")
    metadata: dict[MetadataKey, MetadataValue] | None = Field(default=None, max_length=16)
    output_expires_after: dict[str, Any] | None = Field(default=None, description="Not supported: a batch's "
                                                        "files are kept until their owner deletes them")


class RequestCounts(BaseModel):
    total: int
    completed: int
    failed: int


class BatchErrors(BaseModel):
    object: Literal["list"] = "list"
    data: list[dict[str, Any]]


class BatchOut(BaseModel):
    id: str = Field(examples=["batch_42"])
    object: Literal["batch"] = "batch"
    endpoint: str
    errors: BatchErrors | None
    input_file_id: str
    completion_window: str
    status: str
    output_file_id: str | None
    error_file_id: str | None
    created_at: int
    in_progress_at: int | None
    expires_at: int | None
    finalizing_at: int | None
    completed_at: int | None
    failed_at: int | None
    expired_at: int | None
    cancelling_at: int | None
    cancelled_at: int | None
    request_counts: RequestCounts
    metadata: dict[str, str] | None

    @classmethod
    def of(cls, row: Batch) -> BatchOut:
        return cls(id=public_id(row.id), endpoint=row.endpoint, input_file_id=file_id(row.input_file_id),
                   errors=None if row.errors is None else BatchErrors(data=row.errors),
                   completion_window=row.completion_window, status=row.status,
                   output_file_id=None if row.output_file_id is None else file_id(row.output_file_id),
                   error_file_id=None if row.error_file_id is None else file_id(row.error_file_id),
                   created_at=unix_time(row.created_at), in_progress_at=unix_time(row.in_progress_at),
                   expires_at=unix_time(row.expires_at), finalizing_at=unix_time(row.finalizing_at),
                   completed_at=unix_time(row.completed_at), failed_at=unix_time(row.failed_at),
                   expired_at=unix_time(row.expired_at), cancelling_at=unix_time(row.cancelling_at),
                   cancelled_at=unix_time(row.cancelled_at),
                   request_counts=RequestCounts(total=row.total, completed=row.completed, failed=row.failed),
                   metadata=row.batch_metadata)  # type: ignore[arg-type]


class BatchList(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchOut]
    first_id: str | None
    last_id: str | None
    has_more: bool


def _number(value: str, prefix: str, missing: NotFound) -> int:
    number = value.removeprefix(prefix)
    if not (number.isascii() and number.isdigit()) or not 1 <= int(number) <= MAX_INTEGER:
        raise missing
    return int(number)


def _batch_number(value: str) -> int:
    return _number(value, "batch_", not_found(value))


@router.post("/batches", response_model=BatchOut, summary="Create a batch: the requests of a file run at low "
             "priority, their results written as files")
async def create_batch(request: BatchCreate, caller: Caller, batches: Batches) -> BatchOut:
    if request.output_expires_after is not None:
        raise InvalidRequest("'output_expires_after' is not supported: a batch's files are kept until deleted.",
                             param="output_expires_after", code="unsupported_parameter")
    input_file = _number(request.input_file_id, "file-", file_not_found(request.input_file_id))
    row = await batches.create(caller, input_file_id=input_file, endpoint=request.endpoint,
                               completion_window=request.completion_window, metadata=request.metadata)
    return BatchOut.of(row)


@router.get("/batches", response_model=BatchList, summary="The caller's batches, newest first")
async def list_batches(caller: Caller, batches: Batches, limit: int = Query(20, ge=1, le=100),
                       after: str | None = Query(None, description="A batch id: the page after it")) -> BatchList:
    cursor = None
    if after is not None:
        try:
            cursor = _batch_number(after)
        except NotFound:
            raise InvalidRequest(f"Invalid 'after': {after!r} is not a batch id.", param="after") from None
    found = await batches.list(caller, limit=limit + 1, after=cursor)
    page = [BatchOut.of(row) for row in found[:limit]]
    return BatchList(data=page, first_id=page[0].id if page else None, last_id=page[-1].id if page else None,
                     has_more=len(found) > limit)


@router.get("/batches/{batch_id}", response_model=BatchOut, summary="One of the caller's batches")
async def get_batch(batch_id: str, caller: Caller, batches: Batches) -> BatchOut:
    return BatchOut.of(await batches.get(caller, _batch_number(batch_id)))


@router.post("/batches/{batch_id}/cancel", response_model=BatchOut, summary="Cancel a batch: the requests in "
             "flight finish, the others do not run, the results so far are written")
async def cancel_batch(batch_id: str, caller: Caller, batches: Batches) -> BatchOut:
    return BatchOut.of(await batches.cancel(caller, _batch_number(batch_id)))
