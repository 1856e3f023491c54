"""What the inference service reports about each call, and the port it reports it to."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from socle.identity.permissions import Principal
from socle.logs import request_id


@dataclass(slots=True)
class CallRecord:
    """One client call, as measured on the request path (cheap: no I/O, no estimates)."""

    principal: Principal
    model: str
    endpoint: str
    started_at: float = field(default_factory=time.time)  # wall clock, for the record's date
    started: float = field(default_factory=time.perf_counter)
    backend: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float | None = None
    latency_ms: float = 0.0
    status: str = "ok"  # "ok", "client_closed", or the error kind ("bad_gateway", "gateway_timeout"...)
    attempts: int = 0
    request_id: str | None = field(default_factory=request_id.get)  # the request (or job) it was made for

    def first_token(self) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = (time.perf_counter() - self.started) * 1000

    def usage(self, usage: dict[str, object] | None) -> None:
        if usage:
            self.prompt_tokens = int(usage.get("prompt_tokens") or 0)  # type: ignore[call-overload]
            self.completion_tokens = int(usage.get("completion_tokens") or 0)  # type: ignore[call-overload]

    def finish(self, status: str) -> None:
        self.status = status
        self.latency_ms = (time.perf_counter() - self.started) * 1000


class UsageSink(Protocol):
    def record(self, call: CallRecord) -> None:
        """Take a finished call; must not block (records are written later, in batches)."""


class Sinks:
    """Several sinks fed with the same call records (usage rows, metrics...)."""

    def __init__(self, *sinks: UsageSink) -> None:
        self._sinks = sinks

    def record(self, call: CallRecord) -> None:
        for sink in self._sinks:
            sink.record(call)
