"""Any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, TEI, Albert API) over pooled HTTP.

The client is aiohttp: on the gateway's hot path it costs a fraction of what other Python HTTP
clients do per call. Streams are parsed as server-sent events and handed on event by event: nothing is
buffered beyond one event, and an event larger than ``MAX_EVENT_BYTES`` ends the stream. A stream must
end every choice it started (a ``finish_reason``): one cut short, even by a ``[DONE]``, is a failure, never
a complete answer. Closing a stream early drops its upstream connection, which is how a client's
disconnect stops the backend's work.

Callers know a backend by its public label only. Its address and what it answers on failure are for
operators: they go to the log (the body truncated), and the caller gets a message of the gateway's own,
except the reason a backend gives for rejecting the request itself (its 400), which the caller needs.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Literal

import aiohttp
import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from yarl import URL

from socle.endpoints import Endpoint, Json
from socle.errors import BackendError, BackendTimeout, SocleError, UpstreamRejected
from socle.inference import audio
from socle.inference.backends.base import BackendConfig, BackendKind
from socle.inference.backends.sse import EventTooLarge, read_events

MAX_EVENT_BYTES = 512 * 1024
_CLIENT_FAULTS = frozenset({400, 413, 422})
_LOGGED_BODY_BYTES = 500
_REASON_CHARS = 300
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
log = logging.getLogger("socle.inference")


class LoraAdapter(BaseModel):
    """A LoRA adapter that a vLLM server loads at run time (``POST /v1/load_lora_adapter``) and serves under
    its name, beside the base model it was trained on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200, description="The adapter's model name on the server")
    path: str = Field(min_length=1, description="The adapter's folder, as the server sees it")


class OpenAIBackendConfig(BackendConfig):
    """Any OpenAI-compatible server: vLLM, llama.cpp server, Ollama, TEI, Albert API."""

    type: Literal["openai"]
    url: str = Field(description="Base URL including the version prefix, e.g. http://gpu1:8000/v1")
    model: str | None = Field(default=None, description="Model name on the backend; defaults to the id")
    api_key_env: str | None = Field(default=None, description="Name of the env var holding the backend key")
    api_key: SecretStr | None = Field(default=None, exclude=True, description="The key entered in the browser, "
                                      "kept encrypted in the database and set here when the catalogue is loaded; "
                                      "a file names an environment variable instead (api_key_env)")
    timeout_s: float = Field(default=60.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    weight: int = Field(default=1, ge=1)
    max_connections: int = Field(default=2048, ge=1, description="Per worker; each open stream holds one")
    # Fine-tuned models on vLLM (started with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True).
    accepts_adapters: bool = Field(default=False, description="The server loads LoRA adapters at run time: "
                                   "models fine-tuned from this one are served here")
    adapters_dir: Path | None = Field(default=None, description="This platform's folder of trained adapters, "
                                      "which the server reads too (a shared volume)")
    adapters_dir_remote: str | None = Field(default=None, description="The same folder as the server sees it; "
                                            "default: the same path")
    weights: Path | None = Field(default=None, description="The base model's Hugging Face directory on the "
                                 "training workers, for fine-tuning; only meaningful with accepts_adapters")
    lora: LoraAdapter | None = Field(default=None, description="The adapter this backend serves (a fine-tuned "
                                     "model), loaded when the backend starts and again if the server lost it")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        parts = urllib.parse.urlsplit(value)
        if "@" in parts.netloc:  # the message must not repeat the value: it holds a secret
            raise ValueError("must not carry credentials (user:password@host): name the environment variable "
                             "that holds the backend's key in api_key_env")
        if not parts.hostname:
            raise ValueError("must name a host")
        return value.rstrip("/")

    @field_validator("api_key")
    @classmethod
    def _not_written(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:  # the message must not repeat the value
            raise ValueError("a key is never written in the catalogue: name the environment variable that holds it "
                             "in api_key_env, or enter it in the browser (it is then stored encrypted)")
        return value

    @model_validator(mode="after")
    def _key_env_is_set(self) -> "OpenAIBackendConfig":
        if self.api_key_env and self.api_key_env not in os.environ:
            raise ValueError(f"api_key_env names {self.api_key_env!r}, which is not set in the environment")
        return self

    @model_validator(mode="after")
    def _weights_need_adapters(self) -> "OpenAIBackendConfig":
        if self.weights is not None and not self.accepts_adapters:
            raise ValueError("weights is for fine-tuning a model whose server loads its adapters: set accepts_adapters "
                             "too, or leave weights out")
        return self


class OpenAICompatibleBackend:
    waiting = 0  # calls wait in the remote server, not here
    endpoints = frozenset(Endpoint)
    model_files = ()  # nothing loaded here

    def __init__(self, config: OpenAIBackendConfig, model_id: str, label: str | None = None) -> None:
        self.config = config
        self.model = config.model or model_id
        self.weight = config.weight
        self.name = label or f"{model_id}#0"
        self.location = config.url  # credentials are refused in the configuration
        self._headers = {"content-type": "application/json"}
        if config.api_key is not None:
            self._headers["authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        elif config.api_key_env:
            self._headers["authorization"] = f"Bearer {os.environ[config.api_key_env]}"
        # Parsed once: aiohttp takes a URL object as it is, where a string is parsed on every call.
        self._urls = {endpoint: URL(f"{config.url}/{endpoint.value}") for endpoint in Endpoint}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.config.max_connections, limit_per_host=0, ttl_dns_cache=300,
                                         enable_cleanup_closed=True)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.config.connect_timeout_s,
                                        sock_read=self.config.timeout_s)
        # trust_env=False: never route through a proxy the environment happens to name.
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, headers=self._headers,
                                              trust_env=False, auto_decompress=True)
        if self.config.lora is not None:
            await self._load_adapter()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "start() opens the session"
        return self._session

    async def health(self) -> bool:
        try:
            async with self.session.get(f"{self.config.url}/models",
                                        timeout=aiohttp.ClientTimeout(total=self.config.connect_timeout_s)) as response:
                if response.status < 500 and self.config.lora is not None and response.status == 200:
                    return await self._adapter_listed(await response.read())
                return response.status < 500
        except (aiohttp.ClientError, TimeoutError, BackendError):
            return False

    async def _adapter_listed(self, models: bytes) -> bool:
        """The server lists this backend's adapter; else (it restarted, and lost it) it is loaded again."""
        listed = {entry.get("id") for entry in self._object(models, "listed models").get("data") or ()
                  if isinstance(entry, dict)}
        if self.model not in listed:
            await self._load_adapter()
        return True

    async def _load_adapter(self) -> bool:
        """Ask the server to load this backend's adapter (vLLM's run-time API); True when it loaded it now, False
        when it had it already."""
        assert self.config.lora is not None
        payload = orjson.dumps({"lora_name": self.config.lora.name, "lora_path": self.config.lora.path})
        try:
            async with self.session.post(f"{self.config.url}/load_lora_adapter", data=payload) as response:
                content, status = await response.read(), response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._transport_error(exc) from exc
        if status == 400 and b"already been loaded" in content:
            return False
        if status >= 400:
            log.warning("backend %s (%s) refused to load the adapter %s (HTTP %d): %.*s", self.name, self.location,
                        self.config.lora.path, status, _LOGGED_BODY_BYTES, content.decode("utf-8", "replace"))
            raise BackendError(f"The backend {self.name} could not load the model's adapter.")
        log.info("backend %s (%s) loaded the adapter %s", self.name, self.location, self.config.lora.path)
        return True

    async def call(self, endpoint: Endpoint, body: Json) -> Json:
        if endpoint is Endpoint.TRANSCRIPTIONS:  # a multipart form, not JSON: the session's type is replaced
            form = audio.form(body, self.model)
            payload, headers = form, {"content-type": form.content_type}
        else:
            payload, headers = orjson.dumps({**body, "model": self.model}), None
        try:
            async with self.session.post(self._urls[endpoint], data=payload, headers=headers) as response:
                content = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._transport_error(exc) from exc
        if status == 404 and self.config.lora is not None and await self._load_adapter():
            return await self.call(endpoint, body)  # the server had lost the adapter (a restart)
        if status >= 400:
            raise self._status_error(status, content)
        answer = self._object(content, "answered something")
        return audio.with_usage(answer) if endpoint is Endpoint.TRANSCRIPTIONS else answer

    async def stream(self, endpoint: Endpoint, body: Json) -> AsyncIterator[Json]:
        # aiohttp keeps the payload for the stream's life, and orjson's bytes hold at least 4 KiB however short
        # they are: an exact copy takes a tenth of that for a short prompt, per open stream.
        payload = bytes(memoryview(orjson.dumps({**body, "model": self.model, "stream": True})))
        del body  # this frame lives as long as the stream: it keeps nothing of the request
        try:
            response = await self.session.post(self._urls[endpoint], data=payload)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._transport_error(exc) from exc
        del payload
        finished = False
        choices = _Choices()
        try:
            if response.status >= 400:
                raise self._status_error(response.status, await response.read())
            events = read_events(response.content.iter_any(), max_event_bytes=MAX_EVENT_BYTES)
            async with aclosing(events):
                async for event in events:
                    if event.data.strip() == b"[DONE]":
                        finished = True
                        break
                    chunk = self._stream_chunk(event.data)
                    del event  # while the next event is awaited, this frame holds neither it nor the last chunk
                    choices.seen(chunk)
                    yield chunk
                    del chunk
            if not choices.complete:  # [DONE] or the end of the connection, before every choice ended
                raise BackendError(f"The backend {self.name} ended the stream before the answer was "
                                   "complete.", code="stream_truncated")
        except EventTooLarge as exc:
            log.warning("backend %s (%s) sent a stream event larger than %d bytes", self.name, self.location,
                        MAX_EVENT_BYTES)
            raise BackendError(f"The backend {self.name} sent a stream event larger than "
                               f"{MAX_EVENT_BYTES // 1024} KiB: the answer was cut there.",
                               code="stream_event_too_large") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._transport_error(exc) from exc
        finally:
            if finished:
                response.release()  # the connection goes back to the pool
            else:
                response.close()  # abandoned or broken: drop the connection, which stops the backend

    def _object(self, data: bytes, what: str) -> Json:
        """A backend's answer or stream event, which must be one JSON object."""
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise BackendError(f"The backend {self.name} {what} that is not JSON.") from exc
        if not isinstance(value, dict):
            raise BackendError(f"The backend {self.name} {what} that is not a JSON object.")
        return value

    def _stream_chunk(self, data: bytes) -> Json:
        chunk = self._object(data, "sent a stream event")
        if "error" in chunk:
            log.warning("backend %s (%s) failed mid-stream: %.*s", self.name, self.location,
                        _LOGGED_BODY_BYTES, data.decode("utf-8", "replace"))
            raise BackendError(f"The backend {self.name} failed in the middle of the answer.")
        return chunk

    def _transport_error(self, exc: BaseException) -> SocleError:
        log.warning("backend %s (%s): %s", self.name, self.location, type(exc).__name__)
        if isinstance(exc, (TimeoutError, asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
            return BackendTimeout(f"The backend {self.name} did not answer in time.")
        if isinstance(exc, aiohttp.ClientConnectorError):
            return BackendError(f"The backend {self.name} cannot be reached.", code="backend_unreachable")
        return BackendError(f"The backend {self.name} broke the connection.")

    def _status_error(self, status: int, content: bytes) -> SocleError:
        log.warning("backend %s (%s) answered HTTP %d: %.*s", self.name, self.location, status,
                    _LOGGED_BODY_BYTES, content[:_LOGGED_BODY_BYTES].decode("utf-8", "replace"))
        if status in _CLIENT_FAULTS:
            reason = _reason(content)
            return UpstreamRejected(f"The backend rejected the request{f': {reason}' if reason else '.'}",
                                    status=status)
        # 401/403/404 mean the backend is misconfigured here, 408/429/5xx that it is failing: not the
        # client's fault either way, and nothing the client could act on.
        return BackendError(f"The backend {self.name} failed (HTTP {status}).")


class _Choices:
    """Which choices of a stream have started and which have ended (a ``finish_reason``)."""

    def __init__(self) -> None:
        self.open: set[int] = set()
        self.ended: set[int] = set()

    def seen(self, chunk: Json) -> None:
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0) if isinstance(choice, dict) else 0
            if isinstance(choice, dict) and choice.get("finish_reason"):
                self.open.discard(index)
                self.ended.add(index)
            elif index not in self.ended:
                self.open.add(index)

    @property
    def complete(self) -> bool:
        return bool(self.ended) and not self.open


def _reason(content: bytes) -> str:
    """The message of an OpenAI error envelope, on one line, shortened, without addresses; else nothing."""
    try:
        payload = orjson.loads(content)
    except orjson.JSONDecodeError:
        return ""
    error = payload.get("error", payload) if isinstance(payload, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    if not isinstance(message, str):
        return ""
    message = _URL.sub("<url>", " ".join(message.split()))
    return message if len(message) <= _REASON_CHARS else message[:_REASON_CHARS - 1] + "…"


BACKEND = BackendKind(config=OpenAIBackendConfig, adapter=OpenAICompatibleBackend)
