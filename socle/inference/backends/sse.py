"""Server-sent events, parsed as the HTML standard's "event stream interpretation" says, with a size limit.

Lines end in CRLF, LF or CR; ``data:`` lines of one event are joined with newlines; ``:`` starts a comment;
a blank line ends the event; an event the stream did not end with a blank line is discarded. Each event is
held in memory until its end, so one larger than ``max_event_bytes`` is refused as soon as it is seen,
before it grows further.
"""
from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


class EventTooLarge(Exception):
    """An event exceeds the size limit; its content is not carried, so that it reaches no log."""


@dataclass(frozen=True, slots=True)
class Event:
    data: bytes
    type: str = "message"


class _Parser:
    def __init__(self, max_event_bytes: int) -> None:
        self.max_event_bytes = max_event_bytes
        self.pending = bytearray()  # received, not yet split into lines
        self.data = bytearray()
        self.type = ""
        self.started = False

    def feed(self, chunk: bytes, *, final: bool = False) -> list[Event]:
        self.pending += chunk
        if not self.started and (len(self.pending) >= len(_BOM) or final):
            self.started = True
            if self.pending.startswith(_BOM):
                del self.pending[:len(_BOM)]
        events: list[Event] = []
        start = 0
        while match := _LINE_END.search(self.pending, start):
            if match.group() == b"\r" and match.end() == len(self.pending) and not final:
                break  # may be the first half of a CRLF
            event = self._line(bytes(self.pending[start:match.start()]))
            if event is not None:
                events.append(event)
            start = match.end()
        del self.pending[:start]
        self._check(len(self.pending))  # a line still coming
        return events

    def _check(self, pending: int) -> None:
        if len(self.data) + pending > self.max_event_bytes:
            raise EventTooLarge(f"a stream event is larger than {self.max_event_bytes} bytes")

    def _line(self, line: bytes) -> Event | None:
        if not line:
            return self._dispatch()
        self._check(len(line))
        if line.startswith(b":"):
            return None
        field, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            self.data += value + b"\n"
        elif field == b"event":
            self.type = value.decode("utf-8", "replace")
        return None  # "id" and "retry" matter to a reconnecting browser only; other fields are ignored

    def _dispatch(self) -> Event | None:
        if not self.data:
            self.type = ""
            return None
        event = Event(bytes(self.data[:-1]), self.type or "message")
        self.data.clear()
        self.type = ""
        return event


async def read_events(chunks: AsyncIterable[bytes], *, max_event_bytes: int) -> AsyncIterator[Event]:
    """The events of a stream received in arbitrary pieces."""
    parser = _Parser(max_event_bytes)
    async for chunk in chunks:
        events = parser.feed(chunk)
        del chunk  # while the next piece is awaited, this frame holds nothing of the last (open streams wait here)
        events.reverse()
        while events:
            yield events.pop()
    for event in parser.feed(b"", final=True):
        yield event
