"""Server-sent events parsed as the HTML standard says, whatever pieces the network cuts them into."""
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from socle.inference.backends.sse import Event, EventTooLarge, read_events


async def _pieces(stream: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(stream), size):
        yield stream[start:start + size]


async def _events(stream: bytes, *, size: int = 7, limit: int = 1024) -> list[Event]:
    return [event async for event in read_events(_pieces(stream, size), max_event_bytes=limit)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
async def test_the_standard_s_examples_whatever_the_pieces(size: int) -> None:
    stream = (b"\xef\xbb\xbf: a comment\n\n"
              b"data: YHOO\ndata: +2\ndata: 10\n\n"
              b"event: add\r\ndata:73857293\r\n\r\n"
              b"data\rdata\r\r"
              b"id: 1\nretry: 10\nunknown: x\ndata:  two spaces\n\n")
    assert await _events(stream, size=size) == [
        Event(b"YHOO\n+2\n10"), Event(b"73857293", "add"), Event(b"\n"), Event(b" two spaces")]


async def test_json_spread_over_several_data_lines_is_one_event() -> None:
    stream = b'data: {"choices":\ndata: [{"delta": {"content": "a"}}]}\n\n'
    [event] = await _events(stream)
    assert event.data == b'{"choices":\n[{"delta": {"content": "a"}}]}'


async def test_an_event_the_stream_did_not_finish_is_discarded() -> None:
    assert await _events(b"data: complete\n\ndata: cut") == [Event(b"complete")]
    assert await _events(b"data: cut\n") == []


async def test_a_lone_cr_at_the_end_still_ends_the_event() -> None:
    assert await _events(b"data: x\r\r", size=8) == [Event(b"x")]


@pytest.mark.parametrize("stream", [b"data: " + b"x" * 5000 + b"\n\n",  # one long line
                                    b"data: " + b"x\ndata: " * 2000 + b"\n\n",  # many short ones
                                    b"data: " + b"x" * 5000])  # a line that never ends
@pytest.mark.parametrize("size", [100, 100_000])  # in pieces, or all at once
async def test_an_event_over_the_limit_is_refused_without_its_content(stream: bytes, size: int) -> None:
    with pytest.raises(EventTooLarge) as error:
        await _events(stream, size=size, limit=1024)
    assert "1024" in str(error.value) and "xxx" not in str(error.value)


async def test_events_under_the_limit_pass_one_after_the_other() -> None:
    stream = (b"data: " + b"x" * 900 + b"\n\n") * 5
    assert len(await _events(stream, size=333, limit=1024)) == 5
