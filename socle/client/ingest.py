"""``socle ingest``: upload files and folders into a collection of a running platform, over its API.

It goes through the API like any client, so it works against a remote deployment and obeys the same
permissions. It is resumable: files whose content the collection already holds (same SHA-256) are
not sent again, and the server would give back the existing document anyway; re-running the command
after an interruption only sends what is missing, then waits for ingestion to finish. Files it does not
send are listed with the reason (a type it cannot read, an empty file, the same content as another file of the
run, one the platform refused as too large...), and the run goes on with the others.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from socle.rag.parsing import SUPPORTED

_DONE = ("ready", "failed")


@dataclass
class Outcome:
    uploaded: int = 0
    skipped: int = 0  # already in the collection
    documents: dict[int, dict[str, Any]] = field(default_factory=dict)  # id → last known state
    left_out: list[tuple[Path, str]] = field(default_factory=list)  # files not sent, and why

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [d for d in self.documents.values() if d["status"] == "failed"]


def files_under(paths: Iterable[Path]) -> Iterator[tuple[Path, str | None]]:
    """The files among ``paths`` and, recursively, in the folders among them, in a stable order, each with the
    reason it is not sent (None for those that are)."""
    for path in paths:
        found = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in found:
            if file.suffix.lower() not in SUPPORTED:
                yield file, f"unsupported type {file.suffix or '(no extension)'}"
            elif file.stat().st_size == 0:
                yield file, "empty file"
            else:
                yield file, None


class Refused(Exception):
    """The platform refused one file (too large, unsupported...): that file is left out, the run goes on."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


class Ingester:
    def __init__(self, base_url: str, api_key: str, *, timeout_s: float = 300.0) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers={"Authorization": f"Bearer {api_key}"},
                                  timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:500]
            if method == "POST" and path == "/v1/documents" and response.status_code in (400, 413, 415):
                raise Refused(message)
            raise RuntimeError(f"{method} {path}: {response.status_code} {message}")
        return response.json() if response.content else None

    def collection(self, name: str, *, create: bool, visibility: str = "private", group_id: int | None = None) -> int:
        """The id of the caller's collection of this name (created when asked and missing)."""
        me = self._call("GET", "/v1/me")
        offset = 0
        while page := self._call("GET", "/v1/collections", params={"limit": 1000, "offset": offset})["data"]:
            for collection in page:
                if collection["name"] == name and collection["owner_id"] == me["id"]:
                    return int(collection["id"])
            offset += len(page)
        if not create:
            raise RuntimeError(f"You have no collection named {name!r} (add --create to create it).")
        created = self._call("POST", "/v1/collections",
                             json={"name": name, "visibility": visibility, "group_id": group_id})
        return int(created["id"])

    def _known(self, collection_id: int) -> dict[str, dict[str, Any]]:
        known: dict[str, dict[str, Any]] = {}
        offset = 0
        while page := self._call("GET", "/v1/documents",
                                 params={"collection": collection_id, "limit": 1000, "offset": offset})["data"]:
            known.update((d["content_hash"], d) for d in page)
            offset += len(page)
        return known

    def ingest(self, paths: list[Path], collection_id: int, *, chunk_size: int, chunk_overlap: int, wait: bool,
               console: Console) -> Outcome:
        outcome = Outcome()
        files: list[Path] = []
        for path, reason in files_under(paths):
            if reason is None:
                files.append(path)
            else:
                outcome.left_out.append((path, reason))
        known = self._known(collection_id)
        first: dict[str, Path] = {}  # content hash → the first file of this run that had it
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console) as progress:
            sending = progress.add_task("Envoi", total=len(files))
            for path in files:
                progress.update(sending, description=f"Envoi {path.name[:40]}")
                digest = _sha256(path)
                document = known.get(digest)
                if digest in first:
                    outcome.left_out.append((path, f"same content as {first[digest]}"))
                    progress.advance(sending)
                    continue
                first[digest] = path
                if document is not None:
                    outcome.skipped += 1
                else:
                    try:
                        with path.open("rb") as handle:
                            document = self._call("POST", "/v1/documents", files={"file": (path.name, handle)},
                                                  data={"collection": str(collection_id),
                                                        "chunk_size": str(chunk_size),
                                                        "chunk_overlap": str(chunk_overlap)})
                    except Refused as exc:
                        outcome.left_out.append((path, f"refused by the platform: {exc}"))
                        progress.advance(sending)
                        continue
                    outcome.uploaded += 1
                outcome.documents[document["id"]] = document
                progress.advance(sending)
            progress.update(sending, description="Envoi")
            if wait:
                self._wait(outcome, progress)
        return outcome

    def _wait(self, outcome: Outcome, progress: Progress) -> None:
        ingesting = progress.add_task("Ingestion", total=len(outcome.documents))
        while True:
            pending = [i for i, d in outcome.documents.items() if d["status"] not in _DONE]
            progress.update(ingesting, completed=len(outcome.documents) - len(pending))
            if not pending:
                return
            for document_id in pending[:50]:
                outcome.documents[document_id] = self._call("GET", f"/v1/documents/{document_id}")
            time.sleep(0.5)
