"""Access and portability (GDPR art. 15 and 20): one ZIP archive of all the platform holds about a person.

``donnees.json`` holds their profile (role, groups), their API keys (metadata: never a secret or its hash),
their web sessions (dates only), the quota rules that bind them, their conversations with every message,
their collections with their documents and the text the platform extracted from them, what each installed
app keeps of them (its :class:`~socle.apps.base.PersonalData`, under the names it gives), their files of
``/v1/files``, their usage rows, and the audit trail's entries about them (as actor or as target).
``fichiers/`` holds the uploads still kept on disk (a document is kept only until it is ingested; its text is
in the JSON) and every file of ``/v1/files``. Everything is read a batch at a
time and written to a file as it comes, off the event loop: the archive's size never sits in memory.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import zipfile
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.apps.base import PersonalData
from socle.audit import store as audit_store
from socle.audit.service import Action, AuditTrail
from socle.audit.store import AuditFilter
from socle.db.models import (
    ApiKey,
    Chunk,
    Collection,
    Conversation,
    Document,
    LoginSession,
    Message,
    Quota,
    UploadedFile,
    UsageRecord,
    User,
    utcnow,
)
from socle.errors import NotFound
from socle.files.service import FileService
from socle.identity.keys import PREFIX
from socle.identity.permissions import Permission, Principal, require
from socle.rag.documents import DocumentService

FORMAT = "socle-export/1"
DATA_FILE = "donnees.json"
FILES_DIR = "fichiers"
_BATCH = 500
_FLUSH_BYTES = 1024 * 1024


class ExportService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], documents: DocumentService,
                 audit: AuditTrail, personal_data: Sequence[PersonalData], *, files: FileService) -> None:
        self._sessions = sessions
        self._documents = documents
        self._files = files
        self._audit = audit
        self._personal_data = personal_data

    async def write(self, actor: Principal, user_id: int, target: Path) -> None:
        """Write the archive of ``user_id`` to ``target``: one's own, or anyone's with ``users:admin``
        (recorded in the audit trail either way)."""
        if actor.user_id != user_id:
            require(actor, Permission.USERS_ADMIN)
        async with self._sessions() as session:
            if await session.get(User, user_id) is None:
                raise NotFound(f"User {user_id} not found.", param="user_id")
        await self._audit.record(Action.DATA_EXPORTED, actor=actor, target=("user", user_id))
        archive = await asyncio.to_thread(zipfile.ZipFile, target, "w", zipfile.ZIP_DEFLATED)
        try:
            handle = await asyncio.to_thread(archive.open, DATA_FILE, "w", force_zip64=True)
            try:
                files = await _Person(self._sessions, self._documents, self._personal_data,
                                      user_id, self._files).write(_Json(handle))
            finally:
                await asyncio.to_thread(handle.close)
            for path, name in files:
                with contextlib.suppress(FileNotFoundError):  # ingested since: its text is in the JSON
                    await asyncio.to_thread(archive.write, path, name)
        finally:
            await asyncio.to_thread(archive.close)


class _Json:
    """Compact JSON written to a binary handle in blocks, each block written off the event loop."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self._parts: list[str] = []
        self._size = 0

    async def raw(self, text: str) -> None:
        self._parts.append(text)
        self._size += len(text)
        if self._size >= _FLUSH_BYTES:
            await self.flush()

    async def value(self, value: Any) -> None:
        await self.raw(json.dumps(value, ensure_ascii=False, default=_plain))

    async def streamed(self, row: dict[str, Any]) -> None:
        """An object whose values may be async iterators of objects: each such value a nested list, streamed."""
        await self.raw("{")
        for index, (name, value) in enumerate(row.items()):
            await self.raw(("," if index else "") + json.dumps(name) + ":")
            await (self.items(value, self.streamed) if isinstance(value, AsyncIterator) else self.value(value))
        await self.raw("}")

    async def flush(self) -> None:
        data, self._parts, self._size = "".join(self._parts).encode(), [], 0
        if data:
            await asyncio.to_thread(self._handle.write, data)

    async def items(self, rows: AsyncIterator[Any], write: Callable[[Any], Any] | None = None) -> None:
        """A JSON array of ``rows``, each written by ``write`` (default: as a value)."""
        await self.raw("[")
        first = True
        async for row in rows:
            await self.raw("" if first else ",")
            first = False
            await (write(row) if write is not None else self.value(row))
        await self.raw("]")


def _plain(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return None
    raise TypeError(f"{type(value).__name__} is not exported")


class _Person:
    """One person's data, read in batches and written section after section."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], documents: DocumentService,
                 personal_data: Sequence[PersonalData], user_id: int, uploads: FileService) -> None:
        self._sessions = sessions
        self._documents = documents
        self._uploads = uploads
        self._personal_data = personal_data
        self._user_id = user_id
        self._files: list[tuple[Path, str]] = []

    async def write(self, out: _Json) -> list[tuple[Path, str]]:
        """The JSON document; the uploads still on disk, as (path, name in the archive)."""
        uid = self._user_id
        async with self._sessions() as session:
            user = await session.get(User, uid)
            assert user is not None
            profile = {"id": user.id, "email": user.email, "name": user.name, "role": user.role.name,
                       "permissions": sorted(user.role.permissions), "is_active": user.is_active,
                       "created_at": user.created_at, "groups": [{"id": g.id, "name": g.name}
                                                                 for g in sorted(user.groups, key=lambda g: g.id)]}
            role, group_ids = user.role.name, [g.id for g in user.groups]
            keys = list(await session.scalars(select(ApiKey).where(ApiKey.user_id == uid).order_by(ApiKey.id)))
            web = list(await session.scalars(select(LoginSession).where(LoginSession.user_id == uid)
                                             .order_by(LoginSession.created_at)))
            quotas = list(await session.scalars(select(Quota).where(_binding(uid, [k.id for k in keys], group_ids,
                                                                             role)).order_by(Quota.id)))
        exported_at = json.dumps(utcnow().isoformat())
        await out.raw(f'{{"format":{json.dumps(FORMAT)},"exported_at":{exported_at},"profile":')
        await out.value(profile)
        await out.raw(',"api_keys":')
        await out.value([{"id": k.id, "name": k.name, "prefix": f"{PREFIX}{k.public_id}",
                          "created_at": k.created_at, "expires_at": k.expires_at, "revoked_at": k.revoked_at}
                         for k in keys])
        await out.raw(',"web_sessions":')
        await out.value([{"created_at": s.created_at, "last_seen_at": s.last_seen_at, "expires_at": s.expires_at}
                         for s in web])
        await out.raw(',"quotas":')
        await out.value([_columns(q, "id", "scope", "subject", "model", "requests_per_minute", "requests_per_day",
                                  "tokens_per_minute", "budget_tokens", "budget_cost", "budget_period")
                         for q in quotas])
        await out.raw(',"conversations":')
        await out.items(self._rows(select(Conversation).where(Conversation.user_id == uid), Conversation.id),
                        lambda c: self._conversation(out, c))
        await out.raw(',"collections":')
        await out.items(self._rows(select(Collection).where(Collection.owner_id == uid), Collection.id),
                        lambda c: self._collection(out, c))
        await out.raw(',"files":')
        await out.items(self._rows(select(UploadedFile).where(UploadedFile.owner_id == uid), UploadedFile.id),
                        lambda f: out.value(self._upload(f)))
        for kind in self._personal_data:
            async for name, rows in kind.export(uid):
                await out.raw(f",{json.dumps(name)}:")
                await out.items(rows, out.streamed)
        await out.raw(',"usage":')
        await out.items(self._rows(select(UsageRecord).where(UsageRecord.user_id == uid), UsageRecord.id),
                        lambda u: out.value(_columns(u, "id", "created_at", "key_id", "role", "group_ids", "model",
                                                     "backend", "endpoint", "status", "prompt_tokens",
                                                     "completion_tokens", "latency_ms", "ttft_ms", "cost",
                                                     "energy_kwh", "co2_kg")))
        for name, filters in (("audit_events_as_actor", AuditFilter(actor_user_id=uid)),
                              ("audit_events_about", AuditFilter(target_type="user", target_id=str(uid)))):
            await out.raw(f',"{name}":')
            await out.items(audit_store.in_order(self._sessions, filters),
                            lambda e: out.value(_columns(e, "id", "at", "action", "actor_user_id", "actor_key_id",
                                                         "target_type", "target_id", "details", "address",
                                                         "channel")))
        await out.raw("}")
        await out.flush()
        return self._files

    def _rows(self, query: Select[Any], key: Any) -> AsyncIterator[Any]:
        return in_batches(self._sessions, query, key)

    def _upload(self, upload: UploadedFile) -> dict[str, Any]:
        """A file of /v1/files: its bytes go into the archive beside the JSON."""
        fields = _columns(upload, "id", "filename", "purpose", "bytes", "status", "status_details", "created_at")
        fields["file"] = f"{FILES_DIR}/file-{upload.id}-{upload.filename}"
        self._files.append((self._uploads.path(upload.id), fields["file"]))
        return fields

    async def _conversation(self, out: _Json, conversation: Conversation) -> None:
        await out.raw(json.dumps(_columns(conversation, "id", "title", "model", "collection_ids", "created_at",
                                          "updated_at"), ensure_ascii=False, default=_plain)[:-1] + ',"messages":')
        await out.items(self._rows(select(Message).where(Message.conversation_id == conversation.id), Message.id),
                        lambda m: out.value(_columns(m, "id", "role", "content", "model", "sources", "rating",
                                                     "rating_comment", "rated_at", "created_at")))
        await out.raw("}")

    async def _collection(self, out: _Json, collection: Collection) -> None:
        await out.raw(json.dumps(_columns(collection, "id", "name", "description", "visibility", "group_id",
                                          "created_at", "updated_at"), ensure_ascii=False, default=_plain)[:-1]
                      + ',"documents":')
        await out.items(self._rows(select(Document).where(Document.collection_id == collection.id), Document.id),
                        lambda d: self._document(out, d))
        await out.raw("}")

    async def _document(self, out: _Json, document: Document) -> None:
        fields = _columns(document, "id", "name", "title", "status", "error", "size_bytes", "pages",
                          "content_hash", "created_at", "updated_at")
        fields["file"] = None
        path = self._documents.path(document.id)
        if await asyncio.to_thread(path.is_file):  # an upload is kept until its ingestion
            fields["file"] = f"{FILES_DIR}/{document.id}-{document.name}"
            self._files.append((path, fields["file"]))
        await out.raw(json.dumps(fields, ensure_ascii=False, default=_plain)[:-1] + ',"chunks":')
        await out.items(self._rows(select(Chunk).where(Chunk.document_id == document.id), Chunk.id),
                        lambda c: out.value({"index": c.idx, "page": c.page, "title": c.title, "text": c.text}))
        await out.raw("}")

async def in_batches(sessions: async_sessionmaker[AsyncSession], query: Select[Any], key: Any) -> AsyncIterator[Any]:
    """The rows of ``query`` in ``key`` order, a batch per short-lived session (keyset paging): what an export
    streams, however many rows there are."""
    after: Any = None
    while True:
        page = query if after is None else query.where(key > after)
        async with sessions() as session:
            rows = list(await session.scalars(page.order_by(key).limit(_BATCH)))
        for row in rows:
            yield row
        if len(rows) < _BATCH:
            return
        after = getattr(rows[-1], key.key)


def _columns(row: Any, *names: str) -> dict[str, Any]:
    return {name: getattr(row, name) for name in names}


def _binding(user_id: int, key_ids: list[int], group_ids: list[int], role: str) -> ColumnElement[bool]:
    """The quota rules that bind this person's calls."""
    return or_(Quota.scope == "global",
               (Quota.scope == "user") & (Quota.subject == str(user_id)),
               (Quota.scope == "key") & Quota.subject.in_([str(k) for k in key_ids]),
               (Quota.scope == "group") & Quota.subject.in_([str(g) for g in group_ids]),
               (Quota.scope == "role") & (Quota.subject == role))
