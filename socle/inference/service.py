"""Inference service: admits a call (permission, model, limits), routes it with failover, names the model
back, and reports every call to the usage sink.

A failure before the first byte (connection refused, 5xx, timeout, a full queue) is retried on the
model's other backends; once a stream has started it is never retried: its failure ends the stream.
Streams are opened eagerly: the first chunk is awaited before the caller starts answering, so a
backend that fails before its first byte gives the client a proper HTTP error instead of a broken
stream.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing

import orjson

from socle.endpoints import ENDPOINTS_BY_TYPE, GENERATIONS, TYPE_NAMES, Endpoint, Json
from socle.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    InvalidRequest,
    NotFound,
    SocleError,
)
from socle.identity.permissions import Permission, Principal, require
from socle.inference import audio, token_ids
from socle.inference.registry import ModelRegistry, ServedModel
from socle.inference.routing import BackendState
from socle.quotas.limiter import UNLIMITED, Admission, QuotaLimiter
from socle.usage.events import CallRecord, UsageSink

# What another backend may cure: the backend is down, failing or full.
_RETRYABLE = (BackendError, BackendTimeout, BackendUnavailable)


def _status(exc: BaseException) -> str:
    """A call's outcome for usage and metrics, from what ended it."""
    if isinstance(exc, SocleError):
        return exc.kind
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        return "client_closed"
    return "server_error"


class _NoSink:
    def record(self, call: CallRecord) -> None:
        return None


class InferenceService:
    def __init__(self, registry: ModelRegistry, *, max_tokens_limit: int, usage: UsageSink | None = None,
                 quotas: QuotaLimiter | None = None, default_completion_tokens: int = 1024,
                 max_choices: int = 8) -> None:
        self.registry = registry
        self.max_tokens_limit = max_tokens_limit
        self.max_choices = max_choices
        self.usage: UsageSink = usage or _NoSink()
        self.quotas = quotas
        self.default_completion_tokens = default_completion_tokens

    def list_models(self, principal: Principal) -> list[ServedModel]:
        require(principal, Permission.MODELS_READ)
        return [served for served in self.registry.models
                if served.config.audience is None or served.config.audience.admits(principal)]

    def get_model(self, principal: Principal, name: str) -> ServedModel:
        require(principal, Permission.MODELS_READ)
        return self.visible(principal, name)

    def visible(self, principal: Principal, name: str) -> ServedModel:
        """The model named, if the caller may see it: a model kept for others is answered as unknown. A model of
        the file has no audience: one attribute test on the hot path."""
        served = self.registry.get(name)
        if served.config.audience is not None and not served.config.audience.admits(principal):
            raise NotFound(f"The model '{name}' does not exist.", param="model", code="model_not_found")
        return served

    def model_for(self, principal: Principal, model_type: str, requested: str | None) -> str:
        """The model a call of an optional-model route goes to (the one asked, else the first of its type), once
        some model of that type is configured: without one, every call is a clear 404, whatever it names."""
        first = next((served.id for served in self.list_models(principal) if served.config.type == model_type), None)
        if first is None:
            raise NotFound(f"No {TYPE_NAMES[model_type]} model is configured on this platform.", param="model",
                           code="model_not_found")
        return requested or first

    async def call(self, principal: Principal, endpoint: Endpoint, body: Json, *,
                   recorded_as: str | None = None) -> Json:
        """Answer a call. ``recorded_as``: the operation its usage row names, when the caller called another API
        than the one that serves it (``responses``, answered by chat completions)."""
        served = self._admit(principal, endpoint, body)
        if endpoint is Endpoint.EMBEDDINGS:  # OpenAI's token ids mean nothing to the models served here
            body = token_ids.as_text(body)
        record = CallRecord(principal, served.id, recorded_as or endpoint.value)
        admission = UNLIMITED
        error: SocleError | None = None
        try:
            admission = await self._reserve(principal, served, endpoint, body)
            for state in self._attempts(served, record):
                with served.pool.lease(state) as backend:
                    try:
                        result = await backend.call(endpoint, body)
                    except _RETRYABLE as exc:
                        served.pool.failed(state, exc)
                        error = exc
                        continue
                served.pool.succeeded(state)
                result["model"] = served.id
                record.usage(result.get("usage"))
                record.finish("ok")
                return result
            assert error is not None
            raise error
        except BaseException as exc:
            record.finish(_status(exc))
            raise
        finally:
            await self._settle(admission, served, record)
            self.usage.record(record)

    async def stream(self, principal: Principal, endpoint: Endpoint, body: Json, *,
                     recorded_as: str | None = None) -> AsyncIterator[Json]:
        """Open a stream; errors before its first chunk are raised here, later ones by the iterator.
        ``recorded_as`` as for :meth:`call`."""
        served = self._admit(principal, endpoint, body)
        record = CallRecord(principal, served.id, recorded_as or endpoint.value)
        wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if endpoint in GENERATIONS:  # always ask for usage: accounting needs it, whatever the client wants
            body = {**body, "stream_options": {**(body.get("stream_options") or {}), "include_usage": True}}
        admission = UNLIMITED
        error: SocleError | None = None
        try:
            admission = await self._reserve(principal, served, endpoint, body)
            for state in self._attempts(served, record):
                chunks = self._chunks(served, state, endpoint, body, record, wants_usage)
                try:
                    first = await anext(chunks)
                except StopAsyncIteration:
                    first = None
                except _RETRYABLE as exc:
                    error = exc
                    continue
                except BaseException:
                    await chunks.aclose()
                    raise
                return self._resume(first, chunks, record, served, admission)
            assert error is not None
            raise error
        except BaseException as exc:
            record.finish(_status(exc))
            await self._settle(admission, served, record)
            self.usage.record(record)
            raise

    @staticmethod
    async def _chunks(served: ServedModel, state: BackendState, endpoint: Endpoint, body: Json, record: CallRecord,
                      wants_usage: bool) -> AsyncIterator[Json]:
        with served.pool.lease(state) as backend:
            try:
                async with aclosing(backend.stream(endpoint, body)) as upstream:  # closing stops the backend
                    del body  # an open stream's frames hold neither the request nor its last chunk
                    async for chunk in upstream:
                        if chunk.get("usage"):
                            record.usage(chunk["usage"])
                            if not wants_usage:
                                if not chunk.get("choices"):
                                    continue
                                del chunk["usage"]
                        record.first_token()
                        chunk["model"] = served.id
                        yield chunk
                        del chunk
            except _RETRYABLE as exc:
                served.pool.failed(state, exc)
                raise
            served.pool.succeeded(state)

    async def _resume(self, first: Json | None, rest: AsyncIterator[Json], record: CallRecord, served: ServedModel,
                      admission: Admission) -> AsyncIterator[Json]:
        status = "ok"
        try:
            async with aclosing(rest):
                if first is not None:
                    yield first
                    del first  # an open stream's frames hold no chunk while the next one is awaited
                    async for chunk in rest:
                        yield chunk
                        del chunk
        except BaseException as exc:  # GeneratorExit when the client leaves
            status = _status(exc)
            raise
        finally:
            record.finish(status)
            await self._settle(admission, served, record)
            self.usage.record(record)

    async def _reserve(self, principal: Principal, served: ServedModel, endpoint: Endpoint, body: Json) -> Admission:
        if self.quotas is None:
            return UNLIMITED
        return await self.quotas.admit(principal, served.id, self._worst_case(served, endpoint, body))

    def _worst_case(self, served: ServedModel, endpoint: Endpoint, body: Json) -> Callable[[], tuple[int, float]]:
        """What a call may cost at most: its prompt, generously estimated, plus all it may generate."""
        def estimate() -> tuple[int, float]:
            text = body.get("messages") or body.get("prompt") or body.get("input") or ""
            prompt = len(orjson.dumps(text)) // 3 + 16  # about 4 bytes per token: a safe margin
            if endpoint is Endpoint.TRANSCRIPTIONS:  # a second of audio counts as a token
                prompt = audio.seconds_at_most(body)
            completion = 0 if endpoint not in GENERATIONS else _outputs(endpoint, body) * (
                body.get("max_completion_tokens") or body.get("max_tokens") or self.default_completion_tokens)
            return prompt + completion, served.config.pricing.cost(prompt, completion)
        return estimate

    @staticmethod
    async def _settle(admission: Admission, served: ServedModel, record: CallRecord) -> None:
        await admission.settle(record.prompt_tokens + record.completion_tokens,
                               served.config.pricing.cost(record.prompt_tokens, record.completion_tokens))

    @staticmethod
    def _attempts(served: ServedModel, record: CallRecord) -> Iterator[BackendState]:
        """The backends to try in turn, each counted in the call's record."""
        plan = served.pool.plan()
        retries = served.config.retries if served.config.retries is not None else len(plan) - 1
        for state in plan[: 1 + retries]:
            record.attempts += 1
            record.backend = state.backend.name
            yield state

    def _admit(self, principal: Principal, endpoint: Endpoint, body: Json) -> ServedModel:
        require(principal, Permission.MODELS_USE)
        served = self.visible(principal, body["model"])
        if endpoint not in ENDPOINTS_BY_TYPE[served.config.type]:
            raise InvalidRequest(
                f"The model '{served.id}' is a {served.config.type} model: it does not serve /v1/{endpoint}.",
                param="model", code="model_not_supported")
        for field in ("max_tokens", "max_completion_tokens"):
            asked = body.get(field)
            if asked is not None and asked > self.max_tokens_limit:
                raise InvalidRequest(f"{field} is {asked}, above this platform's limit of "
                                     f"{self.max_tokens_limit}.", param=field, code="max_tokens_too_large")
        for field in ("n", "best_of"):
            asked = body.get(field)
            if asked is not None and asked > self.max_choices:
                raise InvalidRequest(f"{field} is {asked}, above this platform's limit of {self.max_choices} "
                                     "choices per call.", param=field, code="too_many_choices")
        return served


def _outputs(endpoint: Endpoint, body: Json) -> int:
    """How many answers the backend may generate for one call, each up to max_tokens: every choice (``n``, or
    the ``best_of`` candidates among which n are chosen), for every prompt of a /v1/completions batch."""
    choices = max(body.get("n") or 1, body.get("best_of") or 1)
    prompt = body.get("prompt")
    batch = endpoint is Endpoint.COMPLETIONS and isinstance(prompt, list) and bool(prompt) and not isinstance(
        prompt[0], int)  # a list of texts or of token lists; a list of ints is one prompt, tokenized
    return choices * (len(prompt) if batch else 1)
