"""The one interface every inference backend implements, in-process or remote, and what a backend module
declares to the catalogue: its entry's config model and the class that serves it (a :class:`BackendKind`)."""
from __future__ import annotations

import typing
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from socle.endpoints import Endpoint, Json
from socle.inference.cards import ModelCard


class BackendConfig(BaseModel):
    """What every backend's entry in the YAML catalogue has; each backend module subclasses it with its
    own fields and a ``type: Literal["<tag>"]`` that names it in the catalogue (:mod:`socle.inference.catalogue`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:#+-]*$",
                             description="Public label of this backend, the only name of it callers see (errors, "
                             "usage rows); default: <model id>#<index>, e.g. mistral-small#0")

    def bundled_card(self) -> ModelCard | None:
        """The card of the model this backend serves on its own (a file bundled with the platform), if any:
        the model's card when the catalogue writes none."""
        return None


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


class Adapter(Protocol):
    """A backend class: built from its config, for one model of the catalogue, under its public label."""

    def __call__(self, config: Any, model_id: str, label: str) -> Backend: ...


@dataclass(frozen=True, slots=True)
class BackendKind:
    """What a backend module declares: its catalogue entry's model and the class that serves it."""

    config: type[BackendConfig]
    adapter: Adapter

    @property
    def tag(self) -> str:
        """The value of ``type`` that names this backend in the catalogue."""
        field = self.config.model_fields.get("type")
        tags = typing.get_args(field.annotation) if field is not None else ()
        if len(tags) != 1 or not isinstance(tags[0], str):
            raise TypeError(f"{self.config.__name__} must declare type: Literal['<tag>']")
        return tags[0]
