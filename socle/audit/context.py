"""Where the current request comes from, as the HTTP layer saw it (set per request, read when recording)."""
from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Origin:
    address: str | None  # the client's address, after the trusted reverse proxies
    channel: str  # "api" or "ui"


current_origin: ContextVar[Origin | None] = ContextVar("socle_request_origin", default=None)
