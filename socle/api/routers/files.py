"""``/v1/files`` (OpenAI-compatible): upload, list, read and delete one's own files.

``POST /v1/files`` also takes the Albert API's deprecated document upload: a ``file`` with a ``request`` form
field (JSON: ``collection`` and an optional ``chunker``) and no ``purpose``. That form lands the document in the
collection as ``POST /v1/documents`` does, and answers as Albert did (201, ``{"id": <document id>}``). The two
are told apart by their form fields alone.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile, status
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from socle.api.deps import Caller, Documents, platform
from socle.api.strict import StrictRoute
from socle.db.integers import MAX_INTEGER, Id
from socle.errors import InvalidRequest, NotFound
from socle.files.service import PURPOSES, FileService, StoredFile
from socle.files.store import not_found, public_id
from socle.rag.albert_options import ALBERT_SEPARATORS, check_chunker
from socle.storage import BLOCK

router = APIRouter(prefix="/v1", tags=["files"], route_class=StrictRoute)


async def _files(request: Request) -> FileService:
    return platform(request).files


Files = Annotated[FileService, Depends(_files)]


class FileOut(BaseModel):
    id: str = Field(examples=["file-42"])
    object: Literal["file"] = "file"
    bytes: int
    created_at: int = Field(description="Unix time, in seconds")
    filename: str
    purpose: str
    status: Literal["processed", "error"]
    status_details: str | None = Field(default=None, description="Why a fine-tuning file cannot be used")
    expires_at: int | None = None

    @classmethod
    def of(cls, stored: StoredFile) -> FileOut:
        return cls(id=public_id(stored.id), bytes=stored.bytes, created_at=int(stored.created_at.timestamp()),
                   filename=stored.filename, purpose=stored.purpose, status=stored.status,  # type: ignore[arg-type]
                   status_details=stored.status_details)


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileOut]
    first_id: str | None
    last_id: str | None
    has_more: bool


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class _ChunkerArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chunk_size: int = 512
    chunk_overlap: int = 0
    chunk_min_size: int = 0
    length_function: str = "len"
    is_separator_regex: bool = False
    separators: list[str] = Field(default_factory=lambda: list(ALBERT_SEPARATORS))


class _Chunker(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Literal["LangchainRecursiveCharacterTextSplitter", "NoChunker"] = "LangchainRecursiveCharacterTextSplitter"
    args: _ChunkerArgs = Field(default_factory=_ChunkerArgs)


class AlbertUpload(BaseModel):
    """The ``request`` field of Albert's deprecated upload (its defaults: 512 characters, no overlap). Its options
    are honoured or refused by name, as on ``/v1/documents`` (:mod:`socle.rag.albert_options`)."""

    model_config = ConfigDict(extra="forbid")
    collection: Id
    chunker: _Chunker = Field(default_factory=_Chunker)

    def chunking(self) -> dict[str, int]:
        """The document service's chunking arguments."""
        if self.chunker.name == "NoChunker":
            return {"chunk_size": 20_000, "chunk_overlap": 0}  # one chunk as large as a chunk may be
        args = self.chunker.args
        check_chunker(chunker=None, separators=args.separators, preset_separators=None,
                      is_separator_regex=args.is_separator_regex, length_function=args.length_function)
        return {"chunk_size": args.chunk_size, "chunk_overlap": args.chunk_overlap,
                "chunk_min_size": args.chunk_min_size}


def _number(value: str) -> int:
    """``file-42`` (or ``42``) to 42; anything else names no file."""
    number = value.removeprefix("file-")
    if not (number.isascii() and number.isdigit()) or not 1 <= int(number) <= MAX_INTEGER:
        raise not_found(value)
    return int(number)


def _cursor(after: str | None) -> int | None:
    """The ``after`` of a listing: a file id, which need not exist any more."""
    if after is None:
        return None
    try:
        return _number(after)
    except NotFound:
        raise InvalidRequest(f"Invalid 'after': {after!r} is not a file id.", param="after") from None


async def _blocks(upload: UploadFile) -> AsyncIterator[bytes]:
    while block := await upload.read(BLOCK):
        yield block


@router.post("/files", response_model=FileOut, summary="Upload a file (or, with a 'request' field and no "
             "purpose, a document into a collection as Albert API's deprecated upload did)",
             responses={201: {"description": "Albert API's upload: the document's id", "content": {
                 "application/json": {"example": {"id": 12}}}}})
async def upload_file(caller: Caller, files: Files, documents: Documents,
                      file: UploadFile = File(description="The file (JSONL for fine-tuning)"),
                      purpose: str | None = Form(None, description=f"One of {', '.join(PURPOSES)}"),
                      request: str | None = Form(None, description="Albert API's deprecated upload: JSON with "
                                                 "'collection' and an optional 'chunker'")) -> Any:
    if purpose is None and request is not None:
        return await _albert_upload(caller, documents, file, request)
    if request is not None:
        raise InvalidRequest("Give either 'purpose' (a file) or 'request' (Albert API's document upload), not both.",
                             param="request")
    if purpose is None:
        raise InvalidRequest("Missing required parameter: 'purpose'.", param="purpose",
                             code="missing_required_parameter")
    stored = await files.create(caller, file.filename or "", _blocks(file), purpose)
    return FileOut.of(stored)


async def _albert_upload(caller: Caller, documents: Documents, file: UploadFile, request: str) -> JSONResponse:
    try:
        form = AlbertUpload.model_validate_json(request)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "request"
        raise InvalidRequest(f"request: {where}: {first['msg']}", param="request") from exc
    document, _ = await documents.upload(caller, form.collection, file.filename or "", file.file,
                                         **form.chunking())
    return JSONResponse({"id": document.id}, status_code=status.HTTP_201_CREATED)


@router.get("/files", response_model=FileList, summary="The caller's files")
async def list_files(caller: Caller, files: Files, purpose: str | None = None,
                     limit: int = Query(10000, ge=1, le=10000), order: Literal["asc", "desc"] = "desc",
                     after: str | None = Query(None, description="A file id: the page after it")) -> FileList:
    found = await files.list(caller, purpose=purpose, limit=limit + 1, after=_cursor(after), order=order)
    page = [FileOut.of(stored) for stored in found[:limit]]
    return FileList(data=page, first_id=page[0].id if page else None, last_id=page[-1].id if page else None,
                    has_more=len(found) > limit)


@router.get("/files/{file_id}", response_model=FileOut, summary="One of the caller's files")
async def get_file(file_id: str, caller: Caller, files: Files) -> FileOut:
    return FileOut.of(await files.get(caller, _number(file_id)))


@router.get("/files/{file_id}/content", summary="A file's bytes", response_class=FileResponse)
async def file_content(file_id: str, caller: Caller, files: Files) -> FileResponse:
    stored, path = await files.original(caller, _number(file_id))
    return FileResponse(path, media_type="application/octet-stream", filename=stored.filename)


@router.delete("/files/{file_id}", response_model=FileDeleted, summary="Delete one of the caller's files")
async def delete_file(file_id: str, caller: Caller, files: Files) -> FileDeleted:
    number = _number(file_id)
    await files.delete(caller, number)
    return FileDeleted(id=public_id(number))
