"""``/v1/documents``, ``/v1/chunks`` and ``/v1/search`` (Albert-API-compatible): upload documents into a
collection, follow their ingestion, read their chunks, and search the collections one may read.

The Albert API's upload options are honoured or refused by name (``socle.rag.albert_options``), never ignored:
a form field the route does not know is refused too. ``wait=true`` answers once the document is searchable by
every method, as the Albert API's synchronous ingestion did.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile, status
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.responses import Response

from socle.api.deps import Caller, Documents, Search
from socle.api.schemas import ListOf, chunk_out, result_out
from socle.api.strict import StrictRoute
from socle.db.integers import Id, Offset
from socle.db.models import Document
from socle.errors import InvalidRequest
from socle.rag.albert_options import Scalar, check_chunker, check_key, parse_metadata
from socle.rag.search import Method, refuse_web_search

router = APIRouter(prefix="/v1", tags=["documents"], route_class=StrictRoute)

WAIT_TIMEOUT_S = 300.0
# The Albert API's parsing options, accepted with the value that is what the platform does (the whole
# document, parsed as text); any other value is refused.
_PARSING_DEFAULTS = {"paginate_output": ("false", ""), "force_ocr": ("false", ""), "page_range": ("",),
                     "output_format": ("markdown", "")}


class DocumentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    object: Literal["document"] = "document"
    name: str
    collection_id: int
    status: Literal["queued", "processing", "ready", "failed"]
    error: str | None = Field(description="Why ingestion failed")
    title: str | None
    pages: int | None
    size_bytes: int
    content_hash: str = Field(description="SHA-256 of the file: the same content is not ingested twice")
    chunks: int
    embedded: int = Field(description="Chunks with their vector; the others are found by lexical search only")
    chunk_size: int
    chunk_overlap: int
    chunk_min_size: int = 0
    metadata: dict[str, Scalar] | None = Field(default=None, validation_alias="meta",
                                               description="Given at upload; on each chunk too")
    created_at: datetime
    updated_at: datetime


_UPLOAD_FIELDS = frozenset({"file", "collection", "chunk_size", "chunk_overlap", "chunk_min_size", "chunker",
                            "separators", "preset_separators", "is_separator_regex", "length_function", "metadata",
                            "wait"})


async def _refuse_unknown_fields(request: Request) -> None:
    """FastAPI ignores form fields it was not told of; an option a client believes it set must not be."""
    for name, value in (await request.form()).multi_items():
        if name in _UPLOAD_FIELDS:
            continue
        if name in _PARSING_DEFAULTS and isinstance(value, str) and value.strip().lower() in _PARSING_DEFAULTS[name]:
            continue
        if name in _PARSING_DEFAULTS:
            raise InvalidRequest(f"{name} is not offered: documents are parsed whole, as text (PDF pages are read "
                                 "without OCR). Leave it out.", param=name)
        raise InvalidRequest(f"Unknown field {name!r}: accepted are {', '.join(sorted(_UPLOAD_FIELDS))}.",
                             param=name)


@router.post("/documents", response_model=DocumentOut, status_code=status.HTTP_201_CREATED,
             summary="Upload a document into a collection; ingested in the background, or before the answer "
                     "with wait=true",
             responses={200: {"description": "The same content was already in the collection: that document"},
                        202: {"description": "wait=true, but the document was not searchable yet after "
                                             f"{WAIT_TIMEOUT_S:.0f} s: it still is on its way"}})
async def upload_document(request: Request, caller: Caller, documents: Documents, searcher: Search,
                          response: Response,
                          file: UploadFile = File(description="PDF, DOCX, ODT, HTML, Markdown, text, CSV or JSON"),
                          collection: Id = Form(description="Id of the collection (yours)"),
                          chunk_size: int = Form(2048, description="Largest chunk, in characters"),
                          chunk_overlap: int = Form(200, description="Characters repeated between chunks"),
                          chunk_min_size: int = Form(0, description="Smaller chunks are dropped"),
                          chunker: str | None = Form(None, description="RecursiveCharacterTextSplitter only"),
                          separators: list[str] | None = Form(None, description="Albert's default only"),
                          preset_separators: str | None = Form(None, description="Not offered: leave it out"),
                          is_separator_regex: bool | None = Form(None, description="false only"),
                          length_function: str | None = Form(None, description="'len' only: characters"),
                          metadata: str | None = Form(None, description="A JSON object of strings, numbers and "
                                                      "booleans, kept on the document and its chunks"),
                          wait: bool = Form(False, description="Answer once the document is searchable by every "
                                            "method (parsed and embedded)")) -> DocumentOut:
    await _refuse_unknown_fields(request)
    check_chunker(chunker=chunker, separators=separators, preset_separators=preset_separators,
                  is_separator_regex=is_separator_regex, length_function=length_function)
    document, created = await documents.upload(caller, collection, file.filename or "", file.file,
                                               chunk_size=chunk_size, chunk_overlap=chunk_overlap,
                                               chunk_min_size=chunk_min_size, metadata=parse_metadata(metadata))
    if not created:
        response.status_code = status.HTTP_200_OK
    if wait:
        document = await documents.wait_searchable(caller, document.id, embedded=searcher.embedding_model is not None,
                                                   timeout_s=WAIT_TIMEOUT_S)
        if document.status in ("queued", "processing") or document.embedded < document.chunks:
            response.status_code = status.HTTP_202_ACCEPTED
    return DocumentOut.model_validate(document)


@router.get("/documents", response_model=ListOf, summary="Documents of the collections the caller may read")
async def list_documents(caller: Caller, documents: Documents, collection: Id | None = None,
                         limit: int = Query(100, ge=1, le=1000), offset: Offset = 0) -> ListOf:
    found = await documents.list(caller, collection_id=collection, limit=limit, offset=offset)
    return ListOf(data=[DocumentOut.model_validate(d) for d in found])


@router.get("/documents/{document_id}", response_model=DocumentOut)
async def get_document(document_id: Id, caller: Caller, documents: Documents) -> Document:
    return await documents.get(caller, document_id)


@router.delete("/documents/{document_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_document(document_id: Id, caller: Caller, documents: Documents) -> None:
    await documents.delete(caller, document_id)


@router.get("/chunks/{document_id}", response_model=ListOf, summary="A document's chunks, in order")
@router.get("/documents/{document_id}/chunks", response_model=ListOf, summary="A document's chunks, in order")
async def list_chunks(document_id: Id, caller: Caller, documents: Documents,
                      limit: int = Query(100, ge=1, le=1000), offset: Offset = 0) -> ListOf:
    document, chunks = await documents.chunks(caller, document_id, limit=limit, offset=offset)
    return ListOf(data=[chunk_out(chunk, document.name) for chunk in chunks])


@router.get("/chunks/{document_id}/{chunk_id}", summary="One chunk of a document, by the id its listing gives")
async def get_chunk(document_id: Id, chunk_id: Id, caller: Caller, documents: Documents) -> dict[str, Any]:
    document, chunk = await documents.chunk(caller, document_id, chunk_id)
    return chunk_out(chunk, document.name)


class SearchRequest(BaseModel):
    """The Albert API's search: every field of its request is known here, and those the platform cannot
    honour are refused by name (not ignored)."""

    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(min_length=1, max_length=10_000)
    collections: list[Id] = Field(min_length=1, max_length=100)
    method: Method | Literal["multiagent"] = "hybrid"
    k: int = Field(default=10, ge=1, le=200)
    rff_k: int | None = Field(default=None, ge=1, le=1000, description="k of reciprocal rank fusion (hybrid)")
    score_threshold: float | None = Field(default=None, description="Keep results scoring at least this")
    rerank_model: str | None = Field(default=None, description="A rerank model to reorder the results")
    metadata_filters: dict[str, Scalar] | None = Field(
        default=None, description="Only documents whose metadata hold each of these keys with this value")
    web_search: bool = Field(default=False, description="Not offered: the platform has no internet access")
    web_search_k: int | None = Field(default=None, ge=0, description="Albert's; with web_search only")

    @model_validator(mode="after")
    def _offered(self) -> SearchRequest:
        refuse_web_search(method=self.method, web_search=self.web_search)
        return self

    @field_validator("metadata_filters")
    @classmethod
    def _keys(cls, filters: dict[str, Scalar] | None) -> dict[str, Scalar] | None:
        for key in filters or {}:
            check_key(key, "metadata_filters")
        return filters or None


@router.post("/search", summary="Search the given collections; with the tokens the search took ('usage')")
async def search(body: SearchRequest, caller: Caller, searcher: Search) -> dict[str, Any]:
    assert body.method != "multiagent"
    found = await searcher.find(caller, body.prompt, body.collections, method=body.method, k=body.k,
                                score_threshold=body.score_threshold, rerank_model=body.rerank_model,
                                rff_k=body.rff_k, metadata_filters=body.metadata_filters)
    return {"object": "list", "data": [result_out(result) for result in found.results], "usage": found.usage}
