"""Where a fine-tuned model is served: the backends of its base model that can serve its adapter.

An in-process llama.cpp backend of the base serves the GGUF adapter with the same base file, which the
process has already loaded (:mod:`socle.inference.backends.llamacpp` shares it): nothing is loaded twice. A
vLLM backend that accepts adapters serves the PEFT adapter folder, which it reads through a shared volume and
loads at run time. Any other backend of the base (a server that cannot load adapters) is left out.
"""
from __future__ import annotations

from pathlib import Path

from socle.finetuning.engine import TrainingResult
from socle.inference.backends.base import BackendConfig
from socle.inference.backends.llamacpp import LlamaCppBackendConfig
from socle.inference.backends.openai_compat import LoraAdapter, OpenAIBackendConfig
from socle.settings import ModelConfig


def adapter_backends(base: ModelConfig, result: TrainingResult, name: str) -> list[BackendConfig]:
    """The backends that serve the adapter of ``result`` as the model ``name``; ValueError when there is none."""
    backends: list[BackendConfig] = []
    for backend in base.backends:
        if isinstance(backend, LlamaCppBackendConfig) and result.adapter_gguf is not None:
            backends.append(backend.model_copy(update={"name": None, "lora": result.adapter_gguf}))
        elif isinstance(backend, OpenAIBackendConfig) and backend.accepts_adapters:
            lora = LoraAdapter(name=name, path=_as_server_sees(backend, result.adapter_dir))
            # The copy keeps the server's address and its key (a key entered in the browser is sealed again
            # with the fine-tuned model's entry); it serves one adapter and trains nothing.
            backends.append(backend.model_copy(update={"name": None, "model": name, "lora": lora,
                                                       "accepts_adapters": False, "weights": None}))
    if not backends:
        raise ValueError(f"No backend of the model {base.id} can serve a LoRA adapter: fine-tune a model served "
                         "by the embedded llama.cpp, or by a vLLM server marked accepts_adapters.")
    return backends


def _as_server_sees(backend: OpenAIBackendConfig, adapter_dir: Path) -> str:
    """The adapter's folder as the server sees it: under ``adapters_dir_remote`` when the platform's
    ``adapters_dir`` holds it, else the same path (one file system)."""
    if backend.adapters_dir is not None and backend.adapters_dir_remote is not None:
        try:
            relative = adapter_dir.resolve().relative_to(backend.adapters_dir.resolve())
        except ValueError as exc:
            raise ValueError(f"The adapter {adapter_dir} is not under the folder shared with the server "
                             f"({backend.adapters_dir}).") from exc
        return f"{backend.adapters_dir_remote.rstrip('/')}/{relative.as_posix()}"
    return str(adapter_dir.resolve())
