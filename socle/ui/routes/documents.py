"""My documents: the collections I may read (mine, my groups', public ones), creating and deleting mine,
uploading files into them with each file's progress and ingestion status, and downloading a document's original
file; and the files dropped into a conversation (its own private collection)."""
from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from starlette.responses import FileResponse, JSONResponse, Response

from socle.api.strict import StrictRoute
from socle.db.integers import Id
from socle.db.models import Collection, Document
from socle.errors import NotFound, SocleError
from socle.identity.permissions import Permission
from socle.ui.security import SignedIn, Visitor, platform
from socle.ui.web import inline, page, redirect

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=StrictRoute)
VISIBILITIES = {"private": "Privée", "group": "Mon groupe", "public": "Publique"}
PASSAGES = 2000  # shown on a document's page
ACCEPTED = ".pdf,.docx,.odt,.html,.htm,.md,.markdown,.txt,.csv,.json"


def writable(visitor: Visitor, collection: Collection) -> bool:
    """Whether to offer changes; the services decide all the same."""
    return collection.owner_id == visitor.principal.user_id or visitor.principal.can(Permission.COLLECTIONS_PUBLISH)


@router.get("/documents")
async def collections_page(request: Request, visitor: SignedIn) -> Response:
    return await _collections(request, visitor)


@router.post("/documents")
async def create_collection(request: Request, visitor: SignedIn, name: Annotated[str, Form(max_length=200)],
                            description: Annotated[str, Form(max_length=2000)] = "",
                            visibility: Annotated[str, Form()] = "private",
                            group_id: Annotated[Id | None, Form()] = None) -> Response:
    if not name.strip():
        return await _collections(request, visitor, status_code=400, error="Donnez un nom à la collection.")
    try:
        collection = await platform(request).collections.create(
            visitor.principal, name=name.strip(), description=description.strip(), visibility=visibility,
            group_id=group_id)
    except SocleError as exc:
        return await _collections(request, visitor, **inline(exc))
    return redirect(f"/ui/documents/{collection.id}?ok=collection-creee")


@router.get("/documents/{collection_id}")
async def collection_page(collection_id: Id, request: Request, visitor: SignedIn) -> Response:
    p = platform(request)
    collection = await p.collections.get(visitor.principal, collection_id)
    documents = await p.documents.list(visitor.principal, collection_id=collection_id, limit=1000)
    originals = await asyncio.to_thread(lambda: {d.id for d in documents if p.documents.path(d.id).is_file()})
    return page(request, "collection.html", visitor, title=collection.name, collection=collection,
                documents=documents, writable=writable(visitor, collection), visibilities=VISIBILITIES,
                accepted=ACCEPTED, originals=originals)


@router.get("/documents/{collection_id}/documents/{document_id}")
async def document_page(collection_id: Id, document_id: Id, request: Request, visitor: SignedIn) -> Response:
    """A document's passages, each with its anchor (``#passage-N``): where the sources of an answer lead."""
    p = platform(request)
    collection = await p.collections.get(visitor.principal, collection_id)
    document, chunks = await p.documents.chunks(visitor.principal, document_id, limit=PASSAGES)
    if document.collection_id != collection_id:
        raise NotFound(f"Document {document_id} not found.", param="document_id")
    original = await asyncio.to_thread(p.documents.path(document_id).is_file)
    return page(request, "document.html", visitor, title=document.name, collection=collection, document=document,
                chunks=chunks, more=document.chunks > len(chunks), original=original)


@router.get("/documents/{collection_id}/documents/{document_id}/fichier")
async def download(collection_id: Id, document_id: Id, request: Request, visitor: SignedIn) -> Response:
    """The original file, as an attachment whatever its type (an HTML file is never shown inline); its name is
    encoded by Starlette (RFC 6266 ``filename*``), so a hostile name cannot break the header."""
    document, path = await platform(request).documents.original(visitor.principal, collection_id, document_id)
    return FileResponse(path, filename=document.name, media_type="application/octet-stream",
                        content_disposition_type="attachment")


@router.post("/documents/{collection_id}/supprimer")
async def delete_collection(collection_id: Id, request: Request, visitor: SignedIn) -> Response:
    await platform(request).documents.delete_collection(visitor.principal, collection_id)  # with its files
    return redirect("/ui/documents?ok=collection-supprimee")


@router.post("/documents/{collection_id}/documents/{document_id}/supprimer")
async def delete_document(collection_id: Id, document_id: Id, request: Request, visitor: SignedIn) -> Response:
    await platform(request).documents.delete(visitor.principal, document_id)
    return redirect(f"/ui/documents/{collection_id}?ok=document-supprime")


@router.post("/api/documents")
async def upload(request: Request, visitor: SignedIn, file: Annotated[UploadFile, File()],
                 collection: Annotated[Id, Form()]) -> Response:
    """One file (the page sends each file of a selection on its own, to show its progress)."""
    document, created = await platform(request).documents.upload(visitor.principal, collection,
                                                                 file.filename or "", file.file)
    return JSONResponse(document_json(document), status_code=201 if created else 200)


@router.get("/api/documents/{document_id}")
async def document_state(document_id: Id, request: Request, visitor: SignedIn) -> Response:
    document = await platform(request).documents.get(visitor.principal, document_id)
    return JSONResponse(document_json(document))


def document_json(document: Document) -> dict[str, Any]:
    return {"id": document.id, "name": document.name, "status": document.status, "error": document.error,
            "pages": document.pages, "chunks": document.chunks, "embedded": document.embedded,
            "url": f"/ui/documents/{document.collection_id}/documents/{document.id}"}


@router.post("/api/conversations/fichiers")
async def drop_into_conversation(request: Request, visitor: SignedIn, file: Annotated[UploadFile, File()],
                                 conversation: Annotated[Id | None, Form()] = None,
                                 model: Annotated[str | None, Form(max_length=200)] = None) -> Response:
    """A file dropped into a conversation (a new one, named after the file, when none is given yet)."""
    p = platform(request)
    if conversation is None:
        if not model:
            return JSONResponse({"error": {"message": "Choisissez un modèle."}}, status_code=400)
        conversation = (await p.chat_turns.start(visitor.principal, title=f"Document {file.filename or ''}"[:200],
                                                 model=model)).id
    document, created = await p.conversation_files.upload(visitor.principal, conversation, file.filename or "",
                                                          file.file)
    return JSONResponse({"conversation": conversation, "url": f"/ui/chat/{conversation}",
                         "document": document_json(document)}, status_code=201 if created else 200)


@router.get("/api/conversations/{conversation_id}/fichiers")
async def conversation_files(conversation_id: Id, request: Request, visitor: SignedIn) -> Response:
    p = platform(request)
    await p.conversations.get(visitor.principal, conversation_id)  # another's: 404
    return JSONResponse({"files": [document_json(d) for d in
                                   await p.conversation_files.list(visitor.principal, conversation_id)]})


async def _collections(request: Request, visitor: Visitor, *, status_code: int = 200,
                       error: str | None = None) -> Response:
    p = platform(request)
    collections = await p.collections.list(visitor.principal, limit=1000)
    user = await p.identity.get_user(visitor.principal, visitor.principal.user_id)
    return page(request, "documents.html", visitor, title="Mes documents", status_code=status_code, error=error,
                collections=collections, groups=user.groups, visibilities=VISIBILITIES,
                can_own=visitor.principal.can(Permission.COLLECTIONS_OWN),
                can_publish=visitor.principal.can(Permission.COLLECTIONS_PUBLISH))
