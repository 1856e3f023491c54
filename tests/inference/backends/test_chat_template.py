"""A model file's chat template: rendered in a child process with a time limit, every failure a clear error.

The model files are the bundled SmolLM2 GGUF with another template written in its metadata.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from socle.endpoints import Endpoint
from socle.errors import BackendError, InvalidRequest
from socle.inference.backends.llamacpp import LlamaCppBackend, LlamaCppBackendConfig
from tests.support.gguf_files import FORBIDDEN, LOOPING, REFUSING, with_chat_template

HELLO = {"messages": [{"role": "user", "content": "Bonjour"}], "max_tokens": 2}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("gguf")
    return {name: with_chat_template(folder / f"{name}.gguf", template)
            for name, template in (("looping", LOOPING), ("forbidden", FORBIDDEN), ("refusing", REFUSING))}


@contextlib.asynccontextmanager
async def _backend(path: Path | None, **options: float) -> AsyncIterator[LlamaCppBackend]:
    backend = LlamaCppBackend(LlamaCppBackendConfig(type="llamacpp", path=path, n_ctx=512, **options), "m")
    await backend.start()
    try:
        yield backend
    finally:
        await backend.close()


@pytest.fixture
async def looping(models: dict[str, Path]) -> AsyncIterator[LlamaCppBackend]:
    async with _backend(models["looping"], template_timeout_s=1) as backend:
        yield backend


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


async def test_a_looping_template_fails_its_call_and_the_model_serves_on(looping: LlamaCppBackend) -> None:
    assert looping._template is not None and looping._template._process is not None
    renderer = looping._template._process.pid
    with pytest.raises(BackendError) as error:
        await asyncio.wait_for(looping.call(Endpoint.CHAT, HELLO), 60)
    assert error.value.code == "chat_template_failed"
    assert "chat template" in error.value.message and "1 s" in error.value.message
    assert not _alive(renderer), "the process burning a core on the template must be killed"
    completion = await asyncio.wait_for(looping.call(Endpoint.COMPLETIONS, {"prompt": "Hi", "max_tokens": 2}),
                                        60)
    assert completion["usage"]["completion_tokens"] >= 1  # the model thread is free
    with pytest.raises(BackendError):  # the next chat call gets a fresh renderer, and the same clear error
        await asyncio.wait_for(looping.call(Endpoint.CHAT, HELLO), 60)


async def test_a_template_the_sandbox_blocks_is_a_clear_error(models: dict[str, Path]) -> None:
    async with _backend(models["forbidden"]) as backend:
        with pytest.raises(BackendError) as error:
            await asyncio.wait_for(backend.call(Endpoint.CHAT, HELLO), 60)
        assert error.value.code == "chat_template_failed"
        assert "sandbox forbids" in error.value.message and "append" in error.value.message


async def test_a_template_refusing_the_conversation_is_the_client_s_error(models: dict[str, Path]) -> None:
    async with _backend(models["refusing"]) as backend:
        with pytest.raises(InvalidRequest) as error:
            await backend.call(Endpoint.CHAT, {**HELLO, "messages": [{"role": "assistant", "content": "x"}]})
        assert error.value.code == "chat_template_refused" and "first message must be" in error.value.message
        reply = await backend.call(Endpoint.CHAT, HELLO)
        assert reply["choices"][0]["finish_reason"] in ("stop", "length")


async def test_the_bundled_template_renders_the_prompt_llama_cpp_python_would() -> None:
    messages = [{"role": "system", "content": "Réponds brièvement."},
                {"role": "user", "content": "Où est «Paris» ?"}]
    async with _backend(None) as backend:
        assert backend._template is not None
        reference = Jinja2ChatFormatter(template=backend._template.template, eos_token="<|im_end|>",
                                        bos_token="<|im_start|>")(messages=messages).prompt
        assert backend._template.render({"messages": messages}) == reference
