"""Request and response schemas of the API.

Inference requests validate the fields the platform relies on and let every other field through to
the backend unchanged (``extra="allow"``), as an OpenAI-compatible gateway must.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, overload

from pydantic import (
    AliasChoices,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    model_validator,
)

from socle.db.integers import Id
from socle.db.models import Chunk
from socle.rag.search import Result
from socle.settings import ModelCard

# OpenAI's own limits, which clients already respect.
MAX_STOP_SEQUENCES = 4
MAX_TOP_LOGPROBS = 20
MAX_EMBEDDING_INPUTS = 2048


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChatMessage(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(_Open):
    include_usage: bool = False


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class _Generation(_Open):
    model: str = Field(min_length=1, max_length=256)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=128)
    best_of: int | None = Field(default=None, ge=1, le=128)
    stop: str | Annotated[list[str], Field(max_length=MAX_STOP_SEQUENCES)] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    seed: int | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = None


class ChatCompletionRequest(_Generation):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    response_format: ResponseFormat | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None


class CompletionRequest(_Generation):
    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool | None = None
    suffix: str | None = None


class EmbeddingRequest(_Open):
    model: str = Field(min_length=1, max_length=256)
    input: (str | Annotated[list[str], Field(max_length=MAX_EMBEDDING_INPUTS)] | list[int]
            | Annotated[list[list[int]], Field(max_length=MAX_EMBEDDING_INPUTS)])
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(default=None, ge=1)
    input_type: Literal["query", "passage", "document", "search_query", "search_document"] | None = Field(
        default=None, description="e5-style models: 'query' (default) for questions, 'passage' for documents")
    user: str | None = None


class RerankRequest(_Open):
    """vLLM's, Cohere's and Jina's shape; the Albert API's names (``prompt``, ``input``) are accepted too, and
    then the answer takes the Albert API's shape (``data[].score``): ``albert`` says which the client used."""

    model: str = Field(min_length=1, max_length=256)
    query: str = Field(min_length=1, validation_alias=AliasChoices("query", "prompt"))
    documents: list[str] = Field(min_length=1, max_length=1000, validation_alias=AliasChoices("documents", "input"))
    top_n: int | None = Field(default=None, ge=1)
    _albert: bool = PrivateAttr(default=False)

    @model_validator(mode="wrap")
    @classmethod
    def _remember_shape(cls, data: Any, handler: ModelWrapValidatorHandler[RerankRequest]) -> RerankRequest:
        request = handler(data)
        request._albert = isinstance(data, dict) and ("prompt" in data or "input" in data)
        return request

    @property
    def albert(self) -> bool:
        return self._albert


class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str
    type: str = Field(description="The Albert API's name of its kind: text-generation, text-embeddings-inference, "
                      "text-classification (rerank)")
    kind: str = Field(description="The platform's name of its kind, as the catalogue writes it: chat, embeddings, "
                      "rerank")
    aliases: list[str] = []
    max_context_length: int | None = None
    card: ModelCard | None = Field(default=None, description="Provider, licence, intended use, limitations, "
                                   "languages and where the model runs (AI Act transparency)")
    available: bool = Field(default=True, description="Some backend of the model can take a call now; false "
                            "while every one is down or taken out of service (a call would fail)")


class ListOf(BaseModel):
    object: Literal["list"] = "list"
    data: list[Any]


# ---- identity ----------------------------------------------------------------------------------------

class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=320)
    name: str = Field(default="", max_length=200)
    role: str = "user"
    groups: list[str] = []


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200)
    role: str | None = None
    is_active: bool | None = None
    groups: list[str] | None = None


class UserOut(BaseModel):
    id: int
    object: Literal["user"] = "user"
    email: str
    name: str
    role: str
    groups: list[str]
    is_active: bool
    created_at: datetime


class GroupCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=500)


class GroupOut(BaseModel):
    id: int
    object: Literal["group"] = "group"
    name: str
    description: str
    members: list[int]
    created_at: datetime


class RoleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    permissions: list[str]
    description: str = Field(default="", max_length=500)


class RoleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    permissions: list[str] | None = None
    description: str | None = Field(default=None, max_length=500)


class RoleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    object: Literal["role"] = "role"
    name: str
    description: str
    permissions: list[str]
    builtin: bool


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="", max_length=200)
    user_id: Id | None = Field(default=None, description="Admins only: create the key for this user")
    expires_at: AwareDatetime | None = Field(default=None, description="With a time zone, e.g. 2027-01-01T00:00:00Z")


class KeyOut(BaseModel):
    id: int
    object: Literal["api_key"] = "api_key"
    name: str
    prefix: str = Field(description="The public part of the key, to recognise it; the secret is never shown again")
    user_id: int
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="The full key. Shown once: store it now.")


@overload
def unix_time(moment: datetime) -> int: ...
@overload
def unix_time(moment: datetime | None) -> int | None: ...
def unix_time(moment: datetime | None) -> int | None:
    """A moment as OpenAI's and Albert's objects give it: whole seconds since the epoch (None stays None)."""
    return None if moment is None else int(moment.timestamp())


# ---- documents and search ------------------------------------------------------------------------

def chunk_out(chunk: Chunk, document_name: str | None = None) -> dict[str, Any]:
    """A chunk as the Albert API shows it: its document's metadata (the client's, given at upload) beside the
    platform's own keys, which a client's may not shadow."""
    metadata: dict[str, Any] = {**(chunk.meta or {}), "document_id": chunk.document_id,
                                "collection_id": chunk.collection_id, "index": chunk.idx, "title": chunk.title,
                                "page": chunk.page}
    if document_name is not None:
        metadata["document_name"] = document_name
    return {"object": "chunk", "id": chunk.id, "content": chunk.text, "metadata": metadata}


def result_out(result: Result) -> dict[str, Any]:
    return {"object": "search_result", "method": result.method, "score": result.score,
            "chunk": chunk_out(result.chunk, result.document_name)}
