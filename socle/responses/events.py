"""The streaming events of one response, made from the chat chunks of its call.

A chat stream says, chunk by chunk, some text and some pieces of tool calls; the Responses API says the same as
items that open, grow and close: ``response.output_item.added``, then the text's ``response.content_part.added``
and ``response.output_text.delta`` (or a call's ``response.function_call_arguments.delta``), each closed by its
``.done`` events once the answer ends, and ``response.completed`` (``response.incomplete`` when it stopped
short, ``response.failed`` when the backend failed). Every event carries its ``sequence_number``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from socle.endpoints import Json
from socle.responses.translation import incomplete_reason, new_item_id, usage


@dataclass(slots=True)
class _Text:
    index: int
    id: str = field(default_factory=lambda: new_item_id("msg"))
    text: str = ""

    def item(self, status: str) -> Json:
        content = [{"type": "output_text", "text": self.text, "annotations": []}] if status != "in_progress" else []
        return {"type": "message", "id": self.id, "role": "assistant", "status": status, "content": content}


@dataclass(slots=True)
class _Call:
    index: int
    call_id: str
    name: str
    id: str = field(default_factory=lambda: new_item_id("fc"))
    arguments: str = ""

    def item(self, status: str) -> Json:
        return {"type": "function_call", "id": self.id, "call_id": self.call_id, "name": self.name,
                "arguments": self.arguments, "status": status}


class ResponseEvents:
    """The events of one streamed response. ``response`` is the response object, kept current: in progress
    with no output at first, then as it ended."""

    def __init__(self, response: Json, searched: list[Json] | None = None) -> None:
        self.response = response
        self._searched = list(searched or [])  # done before the call: the first output items
        self._sequence = 0
        self._items: list[_Text | _Call] = []
        self._text: _Text | None = None
        self._calls: dict[int, _Call] = {}
        self._finish_reason: str | None = None

    def _event(self, kind: str, **fields: Any) -> Json:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def start(self) -> list[Json]:
        events = [self._event("response.created", response=dict(self.response)),
                  self._event("response.in_progress", response=dict(self.response))]
        for index, item in enumerate(self._searched):
            events += [self._event("response.output_item.added", output_index=index, item=item),
                       self._event("response.file_search_call.completed", item_id=item["id"], output_index=index),
                       self._event("response.output_item.done", output_index=index, item=item)]
        return events

    def feed(self, chunk: Json) -> list[Json]:
        """The events of one chat chunk (its first choice: a response has one output)."""
        events: list[Json] = []
        if chunk.get("usage"):
            self.response["usage"] = usage(chunk["usage"])
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                events += self._text_delta(delta["content"])
            for call in delta.get("tool_calls") or []:
                events += self._call_delta(call)
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
        return events

    def _text_delta(self, text: str) -> list[Json]:
        events = []
        if self._text is None:
            self._text = _Text(self._next_index)
            self._items.append(self._text)
            events += [self._event("response.output_item.added", output_index=self._text.index,
                                   item=self._text.item("in_progress")),
                       self._event("response.content_part.added", item_id=self._text.id,
                                   output_index=self._text.index, content_index=0,
                                   part={"type": "output_text", "text": "", "annotations": []})]
        self._text.text += text
        events.append(self._event("response.output_text.delta", item_id=self._text.id, output_index=self._text.index,
                                  content_index=0, delta=text, logprobs=[]))
        return events

    def _call_delta(self, piece: Json) -> list[Json]:
        events = []
        function = piece.get("function") or {}
        call = self._calls.get(piece.get("index", 0))
        if call is None:
            call = _Call(self._next_index, piece.get("id") or new_item_id("call"), function.get("name") or "")
            self._calls[piece.get("index", 0)] = call
            self._items.append(call)
            events.append(self._event("response.output_item.added", output_index=call.index,
                                      item=call.item("in_progress")))
        elif function.get("name") and not call.name:
            call.name = function["name"]
        if function.get("arguments"):
            call.arguments += function["arguments"]
            events.append(self._event("response.function_call_arguments.delta", item_id=call.id,
                                      output_index=call.index, delta=function["arguments"]))
        return events

    def finish(self) -> list[Json]:
        """The items closed, and the response as it ended (``completed``, or ``incomplete`` and why)."""
        events = []
        for item in self._items:
            if isinstance(item, _Text):
                part = {"type": "output_text", "text": item.text, "annotations": []}
                events += [self._event("response.output_text.done", item_id=item.id, output_index=item.index,
                                       content_index=0, text=item.text, logprobs=[]),
                           self._event("response.content_part.done", item_id=item.id, output_index=item.index,
                                       content_index=0, part=part)]
            else:
                item.arguments = item.arguments or "{}"
                events.append(self._event("response.function_call_arguments.done", item_id=item.id,
                                          output_index=item.index, name=item.name, arguments=item.arguments))
            events.append(self._event("response.output_item.done", output_index=item.index,
                                      item=item.item("completed")))
        reason = incomplete_reason(self._finish_reason)
        self.response.update(output=self.output, status="incomplete" if reason else "completed",
                             incomplete_details={"reason": reason} if reason else None)
        kind = "response.incomplete" if reason else "response.completed"
        return [*events, self._event(kind, response=dict(self.response))]

    def fail(self, error: Json) -> list[Json]:
        """The response failed once streaming had begun: what was written is kept, with the error."""
        self.response.update(output=self.output, status="failed", error=error)
        return [self._event("response.failed", response=dict(self.response))]

    @property
    def _next_index(self) -> int:
        return len(self._searched) + len(self._items)

    @property
    def output(self) -> list[Json]:
        return [*self._searched, *(item.item("completed") for item in self._items)]
