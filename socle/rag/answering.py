"""Chat with retrieval: a chat request's ``search`` option turns it into a question about documents.

The last user message is searched in the named collections; it is then replaced by a prompt that
holds the numbered excerpts and asks for an answer grounded in them, citing ``[n]``. The caller gets
the answer and the excerpts it was given (``search_results``), so every claim can be traced to its
document. Both the Albert API's form (``"search": true, "search_args": {...}``) and a single object
(``"search": {"collections": [...], ...}``) are accepted.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from socle.db.integers import Id
from socle.errors import InvalidRequest
from socle.identity.permissions import Principal
from socle.rag.search import Method, Result, SearchService

PROMPT = """Réponds à la question en t'appuyant uniquement sur les extraits de documents ci-dessous. \
Cite tes sources par leur numéro entre crochets, par exemple [1]. Si les extraits ne permettent pas \
de répondre, dis-le.

Extraits :
{excerpts}

Question : {question}"""


class SearchOption(BaseModel):
    model_config = ConfigDict(extra="forbid")
    collections: list[Id] = Field(min_length=1, max_length=100)
    method: Method = "hybrid"
    k: int = Field(default=5, ge=1, le=50)
    score_threshold: float | None = None
    rerank_model: str | None = None


def search_option(body: dict[str, Any]) -> SearchOption | None:
    """Take the search option out of a chat request (None when it asks for no search)."""
    option = body.pop("search", None)
    args = body.pop("search_args", None)
    if option is None or option is False:
        return None
    try:
        return SearchOption.model_validate(args if option is True else option)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        raise InvalidRequest(f"search.{field}: {error['msg']}", param=f"search.{field}") from exc


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


class Answering:
    def __init__(self, search: SearchService) -> None:
        self._search = search

    async def ground(self, principal: Principal, body: dict[str, Any],
                     option: SearchOption) -> tuple[dict[str, Any], list[Result]]:
        """The chat request rewritten around the excerpts found, and those excerpts."""
        messages = [dict(message) for message in body["messages"]]
        index, question = _question(messages)
        results = await self._search.search(principal, question, option.collections, method=option.method,
                                            k=option.k, score_threshold=option.score_threshold,
                                            rerank_model=option.rerank_model)
        if results:
            excerpts = "\n\n".join(_excerpt(n, result) for n, result in enumerate(results, start=1))
            messages[index] = {**messages[index], "content": PROMPT.format(excerpts=excerpts, question=question)}
        return {**body, "messages": messages}, results
