"""The Responses API (``/v1/responses``) over the inference service: each response is one chat call, so that
permission, model, limits, quotas, routing, failover, usage, cost and carbon are exactly those of a chat
completion; this service only translates, keeps the context and stores the result.

A response continued with ``previous_response_id`` is given the previous response's whole context and output
before its own input (its instructions are not carried over, as OpenAI's are not). With ``store`` (the
default) the response is kept, its owner's alone, and can be read, listed and deleted by its id
(``resp_<n>``); without it, it gets an id that names nothing. A refused call (a quota, a limit, an unknown
model) stores nothing and consumes nothing: the chat call is admitted before any row is written.
"""
from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Literal

from socle.db.models import StoredResponse, utcnow
from socle.endpoints import RESPONSES, Endpoint, Json
from socle.errors import InvalidRequest, NotFound, SocleError
from socle.identity.permissions import Principal
from socle.inference.service import InferenceService
from socle.rag.answering import Answering, SearchOption, question_of
from socle.responses import translation
from socle.responses.events import ResponseEvents
from socle.responses.store import ResponseStore

_PUBLIC_ID = re.compile(r"resp_([1-9][0-9]{0,17})")  # within a 64-bit id


def public_id(response_id: int) -> str:
    return f"resp_{response_id}"


def stored_id(given: str, param: str = "response_id") -> int:
    """The row of a public id; an id that names no stored response is not found."""
    match = _PUBLIC_ID.fullmatch(given)
    if match is None:
        raise NotFound(f"Response with id '{given}' not found.", param=param)
    return int(match.group(1))


@dataclass(frozen=True, slots=True)
class _Plan:
    """A request, understood: its context (every item the model is given) and its chat call."""

    body: Json
    items: list[Json]
    chat: Json
    previous: int | None
    searched: list[Json]  # a file_search's output item, before the model's

    def row(self, actor: Principal, *, status: str, output: list[Json], usage: Json | None,
            error: Json | None) -> StoredResponse:
        return StoredResponse(owner_id=actor.user_id, model=self.body["model"], status=status,
                              instructions=self.body.get("instructions"), input_items=self.items, output=output,
                              usage=usage, parameters=translation.parameters(self.body), error=error,
                              previous_response_id=self.previous, created_at=utcnow())

    @property
    def stored(self) -> bool:
        return self.body.get("store", True) is not False


def _object(row: StoredResponse, response_id: str | None = None) -> Json:
    return translation.response_object(
        response_id=response_id or public_id(row.id), created_at=int(row.created_at.timestamp()), model=row.model,
        status=row.status, output=row.output, usage=row.usage, error=row.error, instructions=row.instructions,
        parameters=row.parameters,
        previous_response_id=public_id(row.previous_response_id) if row.previous_response_id else None)


class ResponseService:
    def __init__(self, inference: InferenceService, store: ResponseStore, answering: Answering) -> None:
        self._inference = inference
        self._answering = answering
        self.store = store  # also one kind of personal data, under the platform's duties towards people

    async def create(self, actor: Principal, body: Json) -> Json:
        """Answer a request whole."""
        plan = await self._plan(actor, body)
        completion = await self._inference.call(actor, Endpoint.CHAT, plan.chat, recorded_as=RESPONSES)
        choice = (completion.get("choices") or [{}])[0]
        reason = translation.incomplete_reason(choice.get("finish_reason"))
        row = plan.row(actor, status="incomplete" if reason else "completed",
                       output=[*plan.searched, *translation.output_items(choice.get("message") or {})],
                       usage=translation.usage(completion.get("usage")), error={"reason": reason} if reason else None)
        row.model = completion.get("model") or row.model
        if not plan.stored:
            return _object(row, _unstored_id())
        return _object(await self.store.add(row))

    async def stream(self, actor: Principal, body: Json) -> AsyncIterator[Json]:
        """Open a streamed response: a refusal or a failure before the first chunk is raised here (nothing is
        stored then); the events then come from the iterator."""
        plan = await self._plan(actor, body)
        chunks = await self._inference.stream(actor, Endpoint.CHAT, plan.chat, recorded_as=RESPONSES)
        try:
            row = plan.row(actor, status="in_progress", output=[], usage=None, error=None)
            if plan.stored:
                row = await self.store.add(row)
            response = _object(row, None if plan.stored else _unstored_id())
        except BaseException:
            await chunks.aclose()  # the backend's stream stops; usage is recorded
            raise
        return self._events(actor, row.id if plan.stored else None, ResponseEvents(response, plan.searched),
                            chunks)

    async def _events(self, actor: Principal, row_id: int | None, events: ResponseEvents,
                      chunks: AsyncIterator[Json]) -> AsyncIterator[Json]:
        ending: list[Json]
        try:
            async with aclosing(chunks):
                for event in events.start():
                    yield event
                async for chunk in chunks:
                    for event in events.feed(chunk):
                        yield event
            ending = events.finish()
        except SocleError as exc:
            ending = events.fail({"code": exc.code or exc.type, "message": exc.message})
        except BaseException:  # the client left: what was written is kept, as incomplete
            events.response.update(output=events.output, status="incomplete",
                                   incomplete_details={"reason": "client_closed"})
            await asyncio.shield(self._save(actor, row_id, events.response))
            raise
        await self._save(actor, row_id, events.response)  # before the last event: a retrieval then finds it
        for event in ending:
            yield event

    async def _save(self, actor: Principal, row_id: int | None, response: Json) -> None:
        if row_id is None:
            return
        error = response.get("error") if response["status"] == "failed" else response.get("incomplete_details")
        await self.store.finish(actor, row_id, status=response["status"], output=response["output"],
                                 usage=response.get("usage"), error=error)

    async def get(self, actor: Principal, response_id: str) -> Json:
        return _object(await self.store.get(actor, stored_id(response_id)))

    async def delete(self, actor: Principal, response_id: str) -> None:
        await self.store.delete(actor, stored_id(response_id))

    async def input_items(self, actor: Principal, response_id: str, *, limit: int = 20,
                          order: Literal["asc", "desc"] = "desc", after: str | None = None) -> tuple[list[Json], bool]:
        """A page of the items the model was given (the previous responses' included), and whether more follow."""
        items = list((await self.store.get(actor, stored_id(response_id))).input_items)
        if order == "desc":
            items.reverse()
        if after is not None:
            ids = [item.get("id") for item in items]
            if after not in ids:
                raise NotFound(f"Item '{after}' not found.", param="after")
            items = items[ids.index(after) + 1:]
        return items[:limit], len(items) > limit

    async def _plan(self, actor: Principal, body: Json) -> _Plan:
        translation.refuse_unknown(body)
        asked = body.get("max_output_tokens")
        if asked is not None and asked > self._inference.max_tokens_limit:
            raise InvalidRequest(f"max_output_tokens is {asked}, above this platform's limit of "
                                 f"{self._inference.max_tokens_limit}.", param="max_output_tokens",
                                 code="max_tokens_too_large")
        history: list[Json] = []
        previous = None
        if body.get("previous_response_id"):
            previous = stored_id(body["previous_response_id"], "previous_response_id")
            try:
                row = await self.store.get(actor, previous)
            except NotFound:
                raise NotFound(f"Previous response with id '{body['previous_response_id']}' not found.",
                               param="previous_response_id") from None
            history = [*row.input_items, *row.output]
        given = translation.input_items(body["input"])
        items = [*history, *given]
        chat = translation.chat_body(body, translation.chat_messages(body.get("instructions"), items))
        chat, searched = await self._search(actor, body, chat, asks=any(
            item["type"] == "message" and item["role"] == "user" for item in given))
        return _Plan(body, items, chat, previous, searched)

    async def _search(self, actor: Principal, body: Json, chat: Json, *, asks: bool) -> tuple[Json, list[Json]]:
        """With a file_search tool and a question in this request's input: the question searched in the caller's
        collections (those they may not read are not found), and the chat call rewritten around the excerpts, as
        a chat completion with ``search`` is."""
        wanted = translation.file_search(body.get("tools") or [])
        if wanted is None or not asks:
            return chat, []
        collections, k = wanted
        question = question_of(chat)
        chat, results = await self._answering.ground(actor, chat, SearchOption(collections=collections, k=k))
        return chat, [translation.file_search_call(question, results)]


def _unstored_id() -> str:
    """The id of a response that is not stored: it names nothing (no stored id has a letter after ``resp_``)."""
    return f"resp_x{secrets.token_hex(16)}"
