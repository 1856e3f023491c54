"""The gateway's vocabulary: the operations it serves and the kinds of models that serve them.

Shared by every layer (the API's routes, inference, usage and metrics, the RAG, the apps), so it lives
below all of them and imports nothing of the platform.
"""
from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

Json = dict[str, Any]  # a request or answer body, as the OpenAI API writes it

ModelType = Literal["chat", "embeddings", "rerank"]


class Endpoint(StrEnum):
    """OpenAI-compatible operations, named by their path under ``/v1`` (the name usage rows record)."""

    CHAT = "chat/completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    RERANK = "rerank"


# What a model of each type answers.
ENDPOINTS_BY_TYPE: dict[str, frozenset[Endpoint]] = {
    "chat": frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS}),
    "embeddings": frozenset({Endpoint.EMBEDDINGS}),
    "rerank": frozenset({Endpoint.RERANK}),
}
# The operations that generate tokens (and so count output tokens against budgets).
GENERATIONS = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS})
