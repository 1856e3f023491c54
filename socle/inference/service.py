"""Inference service: admits a call (permission, model, limits), routes it, and names the model back.

Streams are opened eagerly: the first chunk is awaited before the caller starts answering, so a
backend that fails before its first byte gives the client a proper HTTP error instead of a broken
stream.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from socle.errors import InvalidRequest
from socle.identity.permissions import Permission, Principal, require
from socle.inference.backends.base import Endpoint, Json
from socle.inference.registry import ModelRegistry, ServedModel

_ENDPOINTS_BY_TYPE = {
    "chat": frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS}),
    "embeddings": frozenset({Endpoint.EMBEDDINGS}),
    "rerank": frozenset({Endpoint.RERANK}),
}


class InferenceService:
    def __init__(self, registry: ModelRegistry, *, max_tokens_limit: int) -> None:
        self.registry = registry
        self.max_tokens_limit = max_tokens_limit

    def list_models(self, principal: Principal) -> list[ServedModel]:
        require(principal, Permission.MODELS_READ)
        return list(self.registry.models)

    def get_model(self, principal: Principal, name: str) -> ServedModel:
        require(principal, Permission.MODELS_READ)
        return self.registry.get(name)

    async def call(self, principal: Principal, endpoint: Endpoint, body: Json) -> Json:
        served = self._admit(principal, endpoint, body)
        with served.pool.lease() as backend:
            result = await backend.call(endpoint, body)
        result["model"] = served.id
        return result

    async def stream(self, principal: Principal, endpoint: Endpoint, body: Json) -> AsyncIterator[Json]:
        """Open a stream; errors before its first chunk are raised here, later ones by the iterator."""
        served = self._admit(principal, endpoint, body)
        chunks = self._chunks(served, endpoint, body)
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            first = None
        except BaseException:
            await chunks.aclose()
            raise
        return self._resume(first, chunks)

    @staticmethod
    async def _chunks(served: ServedModel, endpoint: Endpoint, body: Json) -> AsyncIterator[Json]:
        with served.pool.lease() as backend:
            async with aclosing(backend.stream(endpoint, body)) as upstream:  # closing it stops the backend
                async for chunk in upstream:
                    chunk["model"] = served.id
                    yield chunk

    @staticmethod
    async def _resume(first: Json | None, rest: AsyncIterator[Json]) -> AsyncIterator[Json]:
        async with aclosing(rest):
            if first is None:
                return
            yield first
            async for chunk in rest:
                yield chunk

    def _admit(self, principal: Principal, endpoint: Endpoint, body: Json) -> ServedModel:
        require(principal, Permission.MODELS_USE)
        served = self.registry.get(body["model"])
        if endpoint not in _ENDPOINTS_BY_TYPE[served.config.type]:
            raise InvalidRequest(
                f"The model '{served.id}' is a {served.config.type} model: it does not serve /v1/{endpoint}.",
                param="model", code="model_not_supported")
        for field in ("max_tokens", "max_completion_tokens"):
            asked = body.get(field)
            if asked is not None and asked > self.max_tokens_limit:
                raise InvalidRequest(f"{field} is {asked}, above this platform's limit of "
                                     f"{self.max_tokens_limit}.", param=field, code="max_tokens_too_large")
        return served
