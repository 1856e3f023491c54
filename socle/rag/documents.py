"""Documents: accepting uploads durably, and reading or deleting them within the caller's collections.

An upload is accepted only once it is safe: the file is written and synced under the data directory,
then its row and its ingestion job are committed together. From then on a crash loses nothing: the
job comes back after a restart. The same content uploaded twice into a collection gives back the
first document (its SHA-256 is unique per collection), so a client that retries, or ``socle ingest``
run again on a folder, never duplicates anything.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.db.models import Chunk, Collection, Document, utcnow
from socle.errors import InvalidRequest, NotFound
from socle.identity.permissions import Permission, Principal, require
from socle.jobs.queue import JobQueue
from socle.rag.collections import CollectionService, readable
from socle.rag.parsing import SUPPORTED
from socle.storage import stage

INGEST = "rag.ingest"
EMBED = "rag.embed"


class DocumentService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], queue: JobQueue, files: Path, *,
                 max_bytes: int) -> None:
        self._sessions = sessions
        self._queue = queue
        self.files = files
        self._max_bytes = max_bytes

    def path(self, document_id: int) -> Path:
        """Where an accepted document's file waits for its ingestion."""
        return self.files / str(document_id)

    async def upload(self, actor: Principal, collection_id: int, filename: str, source: BinaryIO, *,
                     chunk_size: int = 2048, chunk_overlap: int = 200, chunk_min_size: int = 0,
                     metadata: dict[str, object] | None = None) -> tuple[Document, bool]:
        """Accept a file into a collection; returns the document and whether it is new. ``metadata`` (the
        client's, checked by ``socle.rag.albert_options``) goes on the document and on each of its chunks."""
        require(actor, Permission.COLLECTIONS_OWN)
        name = Path(filename or "").name
        if Path(name).suffix.lower() not in SUPPORTED:
            raise InvalidRequest(f"Unsupported file type {Path(name).suffix or '(none)'}: accepted are "
                                 f"{', '.join(sorted(SUPPORTED))}.", param="file", code="unsupported_file_type")
        if len(name) > 500:  # the column's size
            raise InvalidRequest("The file's name has at most 500 characters.", param="file")
        if chunk_size < 100 or chunk_size > 20_000:
            raise InvalidRequest("chunk_size must be between 100 and 20000 characters.", param="chunk_size")
        if not 0 <= chunk_overlap < chunk_size // 2:
            raise InvalidRequest("chunk_overlap must be between 0 and half of chunk_size.", param="chunk_overlap")
        if not 0 <= chunk_min_size <= chunk_size:
            raise InvalidRequest("chunk_min_size must be between 0 and chunk_size.", param="chunk_min_size")
        async with self._sessions() as session:
            await CollectionService.writable(session, actor, collection_id)
        staged, digest, size = await asyncio.to_thread(self._stage, source)
        try:
            return await self._accept(collection_id, name, staged, digest, size,
                                      {"chunk_size": chunk_size, "chunk_overlap": chunk_overlap,
                                       "chunk_min_size": chunk_min_size, "meta": metadata})
        finally:
            with contextlib.suppress(FileNotFoundError):
                staged.unlink()

    def _stage(self, source: BinaryIO) -> tuple[Path, str, int]:
        """Copy the upload next to its final place, hashing it and bounding its size; synced to disk."""
        return stage(self.files, source, max_bytes=self._max_bytes)

    async def _accept(self, collection_id: int, name: str, staged: Path, digest: str, size: int,
                      options: dict[str, Any]) -> tuple[Document, bool]:
        try:
            async with self._sessions() as session, session.begin():
                existing = await session.scalar(select(Document).where(Document.collection_id == collection_id,
                                                                       Document.content_hash == digest))
                if existing is not None:
                    return existing, False
                now = utcnow()
                document = Document(collection_id=collection_id, name=name, content_hash=digest, size_bytes=size,
                                    status="queued", chunks=0, embedded=0, created_at=now, updated_at=now, **options)
                session.add(document)
                await session.flush()
                await session.execute(update(Collection).where(Collection.id == collection_id)
                                      .values(documents=Collection.documents + 1, updated_at=now))
                await self._queue.enqueue(INGEST, {"document_id": document.id}, dedupe_key=f"{INGEST}:{document.id}",
                                          session=session)
                os.replace(staged, self.path(document.id))  # before the commit: accepted means on disk
        except IntegrityError:  # the same content, uploaded concurrently, won
            async with self._sessions() as session:
                existing = await session.scalar(select(Document).where(Document.collection_id == collection_id,
                                                                       Document.content_hash == digest))
            if existing is None:
                raise
            return existing, False
        return document, True

    async def list(self, actor: Principal, *, collection_id: int | None = None, limit: int = 100,
                   offset: int = 0) -> list[Document]:
        query = select(Document).join(Collection, Collection.id == Document.collection_id).where(readable(actor))
        if collection_id is not None:
            async with self._sessions() as session:
                await CollectionService.readable_one(session, actor, collection_id)
            query = query.where(Document.collection_id == collection_id)
        async with self._sessions() as session:
            return list(await session.scalars(query.order_by(Document.id).limit(limit).offset(offset)))

    async def get(self, actor: Principal, document_id: int) -> Document:
        async with self._sessions() as session:
            return await self._readable(session, actor, document_id)

    async def wait_searchable(self, actor: Principal, document_id: int, *, embedded: bool,
                              timeout_s: float) -> Document:
        """Wait until a document is searchable by every method — parsed, and its chunks embedded when
        ``embedded`` — or has failed; the document as it is then (still on its way when the time ran out).
        The database is looked at, with a growing pause: the ingestion may run in another process."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        pause = 0.05
        while True:
            document = await self.get(actor, document_id)
            done = document.status == "failed" or (
                document.status == "ready" and (not embedded or document.embedded >= document.chunks))
            left = deadline - loop.time()
            if done or left <= 0:
                return document
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 1.5, 1.0)

    async def delete(self, actor: Principal, document_id: int) -> None:
        async with self._sessions() as session, session.begin():
            document = await self._readable(session, actor, document_id)
            await CollectionService.writable(session, actor, document.collection_id)
            await session.execute(update(Collection).where(Collection.id == document.collection_id).values(
                documents=Collection.documents - 1, chunks=Collection.chunks - document.chunks,
                revision=Collection.revision + 1, updated_at=utcnow()))
            await session.delete(document)
        self.path(document_id).unlink(missing_ok=True)

    async def delete_collection(self, actor: Principal, collection_id: int) -> None:
        """Delete a collection (its documents and passages go by the cascade) and its documents' files."""
        async with self._sessions() as session, session.begin():
            collection = await CollectionService.writable(session, actor, collection_id)
            ids = list(await session.scalars(select(Document.id).where(Document.collection_id == collection_id)))
            await session.delete(collection)
        await asyncio.to_thread(self._unlink, ids)

    def _unlink(self, document_ids: list[int]) -> None:
        for document_id in document_ids:
            self.path(document_id).unlink(missing_ok=True)

    async def original(self, actor: Principal, collection_id: int, document_id: int) -> tuple[Document, Path]:
        """A readable document of ``collection_id`` and its original file (404 when either is not there)."""
        document = await self.get(actor, document_id)
        path = self.path(document_id)
        if document.collection_id != collection_id or not path.is_file():
            raise NotFound(f"Document {document_id} has no original file.", param="document_id")
        return document, path

    async def chunks(self, actor: Principal, document_id: int, *, limit: int = 100,
                     offset: int = 0) -> tuple[Document, list[Chunk]]:
        async with self._sessions() as session:
            document = await self._readable(session, actor, document_id)
            rows = await session.scalars(select(Chunk).join(Collection, Collection.id == Chunk.collection_id)
                                         .where(Chunk.document_id == document_id, readable(actor))
                                         .order_by(Chunk.idx).limit(limit).offset(offset))
            return document, list(rows)

    async def chunk(self, actor: Principal, document_id: int, chunk_id: int) -> tuple[Document, Chunk]:
        """One chunk of a readable document (404 when either is not there, or not the other's)."""
        async with self._sessions() as session:
            document = await self._readable(session, actor, document_id)
            chunk = await session.scalar(select(Chunk).join(Collection, Collection.id == Chunk.collection_id).where(
                Chunk.id == chunk_id, Chunk.document_id == document_id, readable(actor)))
        if chunk is None:
            raise NotFound(f"Chunk {chunk_id} not found in document {document_id}.", param="chunk")
        return document, chunk

    async def count_all(self, actor: Principal, *, since: datetime | None = None) -> int:
        """Documents on the whole platform (added since ``since``), whoever may read them: a figure of the
        usage dashboard, so ``usage:read_all`` only; a count, never a name."""
        require(actor, Permission.USAGE_READ_ALL)
        query = select(func.count(Document.id))
        if since is not None:
            query = query.where(Document.created_at >= since)
        async with self._sessions() as session:
            return int(await session.scalar(query) or 0)

    @staticmethod
    async def _readable(session: AsyncSession, actor: Principal, document_id: int) -> Document:
        document = await session.scalar(select(Document).join(Collection, Collection.id == Document.collection_id)
                                         .where(Document.id == document_id, readable(actor)))
        if document is None:
            raise NotFound(f"Document {document_id} not found.", param="document_id")
        return document
