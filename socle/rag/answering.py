"""Chat with retrieval: a chat request's ``search`` option turns it into a question about documents.

The last user message is searched in the named collections; it is then replaced by a prompt that
holds the numbered excerpts and asks for an answer grounded in them, citing ``[n]``. The caller gets
the answer and the excerpts it was given (``search_results``), so every claim can be traced to its
document. Both the Albert API's form (``"search": true, "search_args": {...}``) and a single object
(``"search": {"collections": [...], ...}``) are accepted. With the Albert API's ``template`` (holding ``{prompt}`` and
``{chunks}``), the question is written into it as the Albert API does, the chunks' texts in place of ``{chunks}``.
"""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from socle.db.integers import Id
from socle.errors import InvalidRequest
from socle.identity.permissions import Permission, Principal, require
from socle.inference.service import InferenceService
from socle.rag.search import Method, Result, SearchService, refuse_web_search

PROMPT = """Réponds à la question en t'appuyant uniquement sur les extraits de documents ci-dessous. \
Cite tes sources par leur numéro entre crochets, par exemple [1]. Si les extraits ne permettent pas \
de répondre, dis-le.

Extraits :
{excerpts}

Question : {question}"""


_PLACEHOLDER = re.compile(r"\{(prompt|chunks)\}")


class SearchOption(BaseModel):
    model_config = ConfigDict(extra="forbid")
    collections: list[Id] = Field(min_length=1, max_length=100)
    method: Method | Literal["multiagent"] = "hybrid"
    k: int = Field(default=5, ge=1, le=50)
    score_threshold: float | None = None
    rerank_model: str | None = None
    rff_k: int | None = Field(default=None, ge=1, le=1000)
    metadata_filters: dict[str, str | int | float | bool | None] | None = None
    template: str | None = Field(default=None, max_length=20_000,
                                 description="The Albert API's: the prompt, with {prompt} and {chunks}")
    web_search: bool = False  # the Albert API's: refused when true
    generate: bool = Field(default=False, description="With a demonstration model, its own written answer rather "
                           "than the passages that answer (socle.rag.extractive)")
    web_search_k: int | None = Field(default=None, ge=0)

    @field_validator("template")
    @classmethod
    def _placeholders(cls, template: str | None) -> str | None:
        for placeholder in ("{prompt}", "{chunks}"):
            if template is not None and placeholder not in template:
                raise ValueError(f'template must contain the "{placeholder}" placeholder')
        return template


def search_option(body: dict[str, Any]) -> SearchOption | None:
    """Take the search option out of a chat request (None when it asks for no search)."""
    option = body.pop("search", None)
    args = body.pop("search_args", None)
    if option is None or option is False:
        return None
    if option is True and args is None:  # the Albert API's words
        raise InvalidRequest("search_args is required when search is true.", param="search_args")
    sent = "search_args" if option is True else "search"  # the field the client wrote, named in errors
    try:
        parsed = SearchOption.model_validate(args if option is True else option)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        where = f"{sent}.{field}" if field else sent
        raise InvalidRequest(f"{where}: {error['msg']}", param=where) from exc
    refuse_web_search(method=parsed.method, web_search=parsed.web_search, prefix=f"{sent}.")
    return parsed


def _question(messages: list[dict[str, Any]]) -> tuple[int, str]:
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # content parts: keep the text ones
                content = "\n".join(part.get("text", "") for part in content if part.get("type") == "text")
            if isinstance(content, str) and content.strip():
                return index, content
    raise InvalidRequest("A chat with search needs a user message with text to search for.", param="messages")


def _excerpt(number: int, result: Result) -> str:
    where = result.document_name + (f", p. {result.chunk.page}" if result.chunk.page else "")
    heading = f" — {result.chunk.title}" if result.chunk.title else ""
    return f"[{number}] ({where}{heading})\n{result.chunk.text}"


def question_of(body: dict[str, Any]) -> str:
    """The question a chat request with search asks: its last user message's text."""
    return _question(list(body["messages"]))[1]


class Answering:
    def __init__(self, search: SearchService, inference: InferenceService) -> None:
        self._search = search
        self._inference = inference

    def by_extracts(self, principal: Principal, model: str, *, generate: bool) -> bool:
        """Whether a question about documents asked of ``model`` is answered by extracts (the passages that answer
        it, :mod:`socle.rag.extractive`) rather than written by the model: when the model is a demonstration one
        (its card says so), which would loop and invent figures, unless the request asks for its own answer
        (``generate``). The one decision, for the web UI's turns and the API's ``search``."""
        if generate:
            return False
        require(principal, Permission.MODELS_USE)
        card = self._inference.visible(principal, model).config.model_card  # one kept for others is unknown
        return card is not None and card.demonstration

    async def ground(self, principal: Principal, body: dict[str, Any],
                     option: SearchOption) -> tuple[dict[str, Any], list[Result]]:
        """The chat request rewritten around the excerpts found, and those excerpts."""
        messages = [dict(message) for message in body["messages"]]
        index, question = _question(messages)
        assert option.method != "multiagent"  # refused by search_option
        results = await self._search.search(principal, question, option.collections, method=option.method,
                                            k=option.k, score_threshold=option.score_threshold,
                                            rerank_model=option.rerank_model, rff_k=option.rff_k,
                                            metadata_filters=option.metadata_filters)
        if option.template is not None:  # the Albert API's way: the template, even without results
            chunks = "\n\n\n".join(result.chunk.text for result in results)
            values = {"prompt": question, "chunks": chunks}  # in one pass: a chunk may hold "{prompt}"
            content = _PLACEHOLDER.sub(lambda match: values[match.group(1)], option.template)
            messages[index] = {**messages[index], "content": content}
        elif results:
            excerpts = "\n\n".join(_excerpt(n, result) for n, result in enumerate(results, start=1))
            messages[index] = {**messages[index], "content": PROMPT.format(excerpts=excerpts, question=question)}
        return {**body, "messages": messages}, results
