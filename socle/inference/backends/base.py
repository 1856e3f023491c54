"""The one interface every inference backend implements, in-process or remote."""
from __future__ import annotations

from collections.abc import AsyncIterator
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

Json = dict[str, Any]


class Endpoint(StrEnum):
    """OpenAI-compatible operations, named by their path under ``/v1``."""

    CHAT = "chat/completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    RERANK = "rerank"


class Backend(Protocol):
    """An inference engine serving one model.

    ``body`` is the client's request with ``model`` already set to the name the backend knows.
    Streams yield parsed chunks (dicts); the HTTP layer writes them as server-sent events. Errors are
    :mod:`socle.errors` exceptions. Closing a stream early must stop the work behind it.
    """

    name: str  # the public label (``ModelConfig.backend_label``): in errors and usage rows, seen by callers
    location: str  # where it runs (a URL without credentials, a file): for operators' logs and pages only
    model_files: tuple[Path, ...]  # files loaded in this process, checked against the models manifest
    weight: int
    endpoints: frozenset[Endpoint]
    waiting: int  # calls queued in the engine itself (in-process models); 0 for remote servers

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def health(self) -> bool: ...

    async def call(self, endpoint: Endpoint, body: Json) -> Json: ...

    def stream(self, endpoint: Endpoint, body: Json) -> AsyncIterator[Json]: ...
