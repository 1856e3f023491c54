"""``/v1/documents``, ``/v1/chunks`` and ``/v1/search`` (Albert-API-compatible): upload documents into a
collection, follow their ingestion, read their chunks, and search the collections one may read."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, File, Form, Query, UploadFile, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from socle.api.deps import Caller, Documents, Search
from socle.api.schemas import ListOf, chunk_out, result_out
from socle.api.strict import StrictRoute
from socle.db.integers import Id, Offset
from socle.db.models import Document
from socle.rag.search import Method

router = APIRouter(prefix="/v1", tags=["documents"], route_class=StrictRoute)


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
    created_at: datetime
    updated_at: datetime


@router.post("/documents", response_model=DocumentOut, status_code=status.HTTP_201_CREATED,
             summary="Upload a document into a collection; it is ingested in the background",
             responses={200: {"description": "The same content was already in the collection: that document"}})
async def upload_document(caller: Caller, documents: Documents, response: Response,
                          file: UploadFile = File(description="PDF, DOCX, ODT, HTML, Markdown, text, CSV or JSON"),
                          collection: Id = Form(description="Id of the collection (yours)"),
                          chunk_size: int = Form(2048, description="Largest chunk, in characters"),
                          chunk_overlap: int = Form(200, description="Characters repeated between chunks")
                          ) -> DocumentOut:
    document, created = await documents.upload(caller, collection, file.filename or "", file.file,
                                               chunk_size=chunk_size, chunk_overlap=chunk_overlap)
    if not created:
        response.status_code = status.HTTP_200_OK
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
async def list_chunks(document_id: Id, caller: Caller, documents: Documents,
                      limit: int = Query(100, ge=1, le=1000), offset: Offset = 0) -> ListOf:
    document, chunks = await documents.chunks(caller, document_id, limit=limit, offset=offset)
    return ListOf(data=[chunk_out(chunk, document.name) for chunk in chunks])


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the Albert API's other options (web_search...) are not offered
    prompt: str = Field(min_length=1, max_length=10_000)
    collections: list[Id] = Field(min_length=1, max_length=100)
    method: Method = "hybrid"
    k: int = Field(default=10, ge=1, le=200)
    score_threshold: float | None = Field(default=None, description="Keep results scoring at least this")
    rerank_model: str | None = Field(default=None, description="A rerank model to reorder the results")


@router.post("/search", response_model=ListOf, summary="Search the given collections")
async def search(body: SearchRequest, caller: Caller, searcher: Search) -> ListOf:
    results = await searcher.search(caller, body.prompt, body.collections, method=body.method, k=body.k,
                                    score_threshold=body.score_threshold, rerank_model=body.rerank_model)
    return ListOf(data=[result_out(result) for result in results])
