"""The gateway's vocabulary: the operations it serves and the kinds of models that serve them.

Shared by every layer (the API's routes, inference, usage and metrics, the RAG, the apps), so it lives
below all of them and imports nothing of the platform.
"""
from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

Json = dict[str, Any]  # a request or answer body, as the OpenAI API writes it

ModelType = Literal["chat", "embeddings", "rerank", "transcription", "moderation"]
# The Albert API's names for the same kinds: ``/v1/models`` reports them as ``type`` (its clients pick a model
# by ``type == "text-generation"``), and the catalogue accepts them.
ALBERT_TYPES: dict[str, str] = {"chat": "text-generation", "embeddings": "text-embeddings-inference",
                                "rerank": "text-classification", "transcription": "automatic-speech-recognition",
                                "moderation": "moderation"}
PLATFORM_TYPES: dict[str, str] = {albert: ours for ours, albert in ALBERT_TYPES.items()}


class Endpoint(StrEnum):
    """OpenAI-compatible operations, named by their path under ``/v1`` (the name usage rows record)."""

    CHAT = "chat/completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    RERANK = "rerank"
    TRANSCRIPTIONS = "audio/transcriptions"
    MODERATIONS = "moderations"


RESPONSES = "responses"
"""What usage rows and metrics name a ``/v1/responses`` call: a chat model answers it (:attr:`Endpoint.CHAT`),
but the caller called the Responses API, and its usage says so."""

# What a model of each type answers.
ENDPOINTS_BY_TYPE: dict[str, frozenset[Endpoint]] = {
    "chat": frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS}),
    "embeddings": frozenset({Endpoint.EMBEDDINGS}),
    "rerank": frozenset({Endpoint.RERANK}),
    "transcription": frozenset({Endpoint.TRANSCRIPTIONS}),
    "moderation": frozenset({Endpoint.MODERATIONS}),
}
# What each type is called in messages (``No speech-to-text model is configured``).
TYPE_NAMES: dict[str, str] = {"chat": "chat", "embeddings": "embeddings", "rerank": "rerank",
                              "transcription": "speech-to-text", "moderation": "moderation"}
# The operations that generate tokens (and so count output tokens against budgets).
GENERATIONS = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS})
