"""Ingestion jobs: parse and chunk a document (it becomes searchable by words), then embed its chunks. The
uploaded file is kept as the document's original (downloadable), unless it could not be parsed.

Both handlers are idempotent, as the job queue requires: a job run twice, or resumed after a crash,
ends in the same state. Parsing writes every chunk, the full-text index, the document's status and
the embedding job in one transaction: a document is either not parsed at all or fully searchable
by words. Embedding then catches up in batches, each committed with its vectors, so a crash redoes
one batch at most; until then the chunks are found by lexical search.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.db.models import Chunk, Collection, Document, utcnow
from socle.endpoints import Endpoint
from socle.identity.permissions import Permission, Principal
from socle.inference.service import InferenceService
from socle.jobs.kinds import JobKind, Kind
from socle.jobs.queue import JobQueue
from socle.jobs.worker import PermanentError
from socle.rag.chunking import chunk_document
from socle.rag.documents import EMBED, INGEST, DocumentService
from socle.rag.lexical import analyse
from socle.rag.parsing import ParseError, Sandbox
from socle.rag.stores import ChunkStore

log = logging.getLogger("socle.rag")


def ingestion_principal(owner_id: int) -> Principal:
    """Whom an ingestion's embedding calls are counted to: the collection's owner."""
    return Principal(user_id=owner_id, email="ingestion", role="ingestion",
                     permissions=frozenset({Permission.MODELS_USE}))


class Ingestion:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], queue: JobQueue, documents: DocumentService,
                 sandbox: Sandbox, inference: InferenceService, store: ChunkStore, *, embedding_model: str | None,
                 batch_size: int = 32, on_ingested: Callable[[int], None] | None = None) -> None:
        self._sessions = sessions
        self._on_ingested = on_ingested  # told the chunks of each document made searchable (metrics)
        self._queue = queue
        self._documents = documents
        self._sandbox = sandbox
        self._inference = inference
        self._embedding_model = embedding_model
        self._batch_size = batch_size
        self._store = store
        self._prepared: set[int] = set()  # vector sizes the store is ready for
        self._batching = asyncio.Lock()

    @property
    def kinds(self) -> list[JobKind]:
        """Parsing a document, then embedding its chunks (an embedding job that gives up leaves its document
        found by its words)."""
        return [Kind(INGEST, self.ingest, self.give_up), Kind(EMBED, self.embed)]

    async def give_up(self, payload: dict[str, Any], error: str) -> None:
        """An ingestion job whose attempts are spent fails its document, with the reason, rather than leaving
        it processing for ever."""
        async with self._sessions() as session, session.begin():
            await session.execute(update(Document).where(
                Document.id == int(payload["document_id"]), Document.status.in_(("queued", "processing")))
                .values(status="failed", error=error[:2000], updated_at=utcnow()))

    async def ingest(self, payload: dict[str, Any]) -> None:
        document_id = int(payload["document_id"])
        async with self._sessions() as session, session.begin():
            document = await session.get(Document, document_id)
            if document is None or document.status in ("ready", "failed"):
                return  # deleted meanwhile, or done by a previous run
            document.status, document.updated_at = "processing", utcnow()
        path = self._documents.path(document_id)
        if not path.exists():
            await self._fail(document_id, "The uploaded file is missing from the data directory.")
            raise PermanentError(f"document {document_id}: file missing")
        try:
            parsed = await self._sandbox.parse(path, document.name)
            chunks = chunk_document(parsed, size=document.chunk_size, overlap=document.chunk_overlap,
                                    min_size=document.chunk_min_size)
        except ParseError as exc:
            await self._fail(document_id, str(exc))
            path.unlink(missing_ok=True)
            raise PermanentError(str(exc)) from exc
        async with self._sessions() as session, session.begin():
            document = await session.get(Document, document_id, with_for_update=True)
            if document is None or document.status != "processing":
                return
            await session.execute(delete(Chunk).where(Chunk.document_id == document_id))  # none, unless rerun
            session.add_all(Chunk(document_id=document_id, collection_id=document.collection_id, idx=chunk.index,
                                  text=chunk.text, title=chunk.title, page=chunk.page, meta=document.meta,
                                  lexical=analyse(chunk.searchable)) for chunk in chunks)
            document.status, document.title, document.pages = "ready", parsed.title, parsed.pages
            document.chunks, document.embedded, document.error, document.updated_at = len(chunks), 0, None, utcnow()
            await session.execute(update(Collection).where(Collection.id == document.collection_id).values(
                chunks=Collection.chunks + len(chunks), revision=Collection.revision + 1, updated_at=utcnow()))
            if self._embedding_model is not None:  # else found by its words only
                await self._queue.enqueue(EMBED, {"document_id": document_id}, dedupe_key=f"{EMBED}:{document_id}",
                                          session=session)
        # the file stays: it is the original its readers may download (deleted with its document)
        log.info("document %d: %d chunks from %s pages", document_id, len(chunks), parsed.pages or "?")
        if self._on_ingested is not None:
            self._on_ingested(len(chunks))

    async def embed(self, payload: dict[str, Any]) -> None:
        """Embed the document's chunks. Each batch is filled up with other pending chunks of the same
        collection, so that many small documents are embedded in full batches; their own jobs then
        find nothing left to do. Batches are taken one at a time in a process, never twice."""
        document_id = int(payload["document_id"])
        while self._embedding_model is not None:
            async with self._batching:
                async with self._sessions() as session:
                    target = (await session.execute(
                        select(Document.collection_id, Collection.owner_id)
                        .join(Collection, Collection.id == Document.collection_id)
                        .where(Document.id == document_id))).first()
                    if target is None:
                        return  # deleted meanwhile
                    collection_id, owner = target
                    pending = select(Chunk.id, Chunk.document_id, Chunk.title, Chunk.text).where(
                        Chunk.embedding.is_(None))
                    rows = list((await session.execute(pending.where(Chunk.document_id == document_id)
                                                       .order_by(Chunk.idx).limit(self._batch_size))).all())
                    if not rows:
                        return
                    if len(rows) < self._batch_size:
                        rows += (await session.execute(
                            pending.where(Chunk.collection_id == collection_id, Chunk.document_id != document_id)
                            .order_by(Chunk.id).limit(self._batch_size - len(rows)))).all()
                await self._embed_batch(rows, collection_id, owner)

    async def _embed_batch(self, rows: list[Any], collection_id: int, owner: int) -> None:
        assert self._embedding_model is not None
        texts = [f"{title}\n{text}" if title else text for _, _, title, text in rows]
        answer = await self._inference.call(ingestion_principal(owner), Endpoint.EMBEDDINGS, {
            "model": self._embedding_model, "input": texts, "input_type": "passage"})
        vectors = [item["embedding"] for item in sorted(answer["data"], key=lambda item: item["index"])]
        documents = sorted({document_id for _, document_id, _, _ in rows})
        async with self._sessions() as session, session.begin():
            if len(vectors[0]) not in self._prepared:
                await self._store.prepare(session, len(vectors[0]))
                self._prepared.add(len(vectors[0]))
            existing = set(await session.scalars(select(Chunk.id).where(Chunk.id.in_([row[0] for row in rows]))))
            updates = [{"id": row[0], "embedding": vector} for row, vector in zip(rows, vectors, strict=True)
                       if row[0] in existing]  # not those deleted meanwhile
            if updates:
                await session.execute(update(Chunk), updates)  # by primary key
            embedded = (select(func.count(Chunk.id))
                        .where(Chunk.document_id == Document.id, Chunk.embedding.isnot(None)).scalar_subquery())
            await session.execute(update(Document).where(Document.id.in_(documents))
                                  .values(embedded=embedded, updated_at=utcnow()))
            await session.execute(update(Collection).where(Collection.id == collection_id)
                                  .values(revision=Collection.revision + 1))

    async def _fail(self, document_id: int, reason: str) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(update(Document).where(Document.id == document_id)
                                  .values(status="failed", error=reason[:2000], updated_at=utcnow()))
