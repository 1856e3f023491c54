"""Any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, TEI, Albert API) over pooled HTTP.

Streams are read line by line and handed on event by event: nothing is buffered beyond one event.
Closing the stream closes the upstream response, which is how a client's disconnect stops the work.
"""
from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx
import orjson

from socle.errors import BackendError, BackendTimeout, SocleError, UpstreamRejected
from socle.inference.backends.base import Endpoint, Json
from socle.settings import OpenAIBackendConfig


class OpenAICompatibleBackend:
    endpoints = frozenset(Endpoint)

    def __init__(self, config: OpenAIBackendConfig, model_id: str) -> None:
        self.config = config
        self.model = config.model or model_id
        self.weight = config.weight
        self.name = f"openai:{config.url}"
        headers = {"content-type": "application/json"}
        if config.api_key_env:
            headers["authorization"] = f"Bearer {os.environ[config.api_key_env]}"
        self._client = httpx.AsyncClient(
            base_url=config.url + "/",
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
            limits=httpx.Limits(max_connections=config.max_connections,
                                max_keepalive_connections=config.max_connections),
            follow_redirects=False,
            trust_env=False,  # never route through a proxy the environment happens to name
        )

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        await self._client.aclose()

    async def health(self) -> bool:
        try:
            response = await self._client.get("models", timeout=self.config.connect_timeout_s)
        except httpx.HTTPError:
            return False
        return response.status_code < 500

    async def call(self, endpoint: Endpoint, body: Json) -> Json:
        try:
            response = await self._client.post(endpoint.value, content=orjson.dumps({**body, "model": self.model}))
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        if response.status_code >= 400:
            raise self._status_error(response.status_code, response.content)
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise BackendError(f"{self.name} answered something that is not JSON.") from exc
        if not isinstance(payload, dict):
            raise BackendError(f"{self.name} answered JSON that is not an object.")
        return payload

    async def stream(self, endpoint: Endpoint, body: Json) -> AsyncIterator[Json]:
        request = self._client.build_request(
            "POST", endpoint.value, content=orjson.dumps({**body, "model": self.model, "stream": True}))
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        try:
            if response.status_code >= 400:
                raise self._status_error(response.status_code, await response.aread())
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, comments, "event:" lines
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError as exc:
                    raise BackendError(f"{self.name} sent a stream event that is not JSON.") from exc
                if isinstance(chunk, dict) and "error" in chunk:
                    raise BackendError(f"{self.name} failed mid-stream: {_error_message(chunk)}")
                yield chunk
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        finally:
            await response.aclose()

    def _transport_error(self, exc: httpx.HTTPError) -> SocleError:
        if isinstance(exc, httpx.TimeoutException):
            return BackendTimeout(f"The backend {self.name} did not answer in time.")
        return BackendError(f"The backend {self.name} cannot be reached: {type(exc).__name__}.",
                            code="backend_unreachable")

    def _status_error(self, status: int, content: bytes) -> SocleError:
        message = _error_message(_json_or_none(content)) or content[:300].decode("utf-8", "replace")
        if status in _CLIENT_FAULTS:
            return UpstreamRejected(f"The backend rejected the request: {message}", status=status)
        # 401/403/404 mean the backend is misconfigured here, 408/429/5xx that it is failing: not the
        # client's fault either way.
        return BackendError(f"The backend {self.name} failed with HTTP {status}: {message}")


_CLIENT_FAULTS = frozenset({400, 413, 422})


def _json_or_none(content: bytes) -> object:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


def _error_message(payload: object) -> str:
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict):
            return str(error.get("message") or error.get("detail") or error)
        return str(error)
    return ""
