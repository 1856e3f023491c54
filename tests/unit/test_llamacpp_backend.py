"""The in-process llama.cpp backend with the bundled model: cancellation and limits."""
from __future__ import annotations

import pytest

from socle.errors import InvalidRequest
from socle.inference.backends.base import Endpoint
from socle.inference.backends.llamacpp import LlamaCppBackend, bundled_smollm2
from socle.settings import LlamaCppBackendConfig

NO_END = {"0": -100, "1": -100, "2": -100}


@pytest.fixture(scope="module")
async def backend():
    backend = LlamaCppBackend(LlamaCppBackendConfig(type="llamacpp", n_ctx=2048), "smollm2-135m")
    await backend.start()
    yield backend
    await backend.close()


def test_the_bundled_model_is_found_in_its_package() -> None:
    path = bundled_smollm2()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000


async def test_closing_a_stream_stops_the_generation(backend: LlamaCppBackend) -> None:
    stream = backend.stream(Endpoint.COMPLETIONS, {"prompt": "1, 2, 3,", "max_tokens": 1000, "logit_bias": NO_END})
    await anext(stream)
    abandoned = backend.current
    await stream.aclose()
    # The next call runs once the model thread is free, i.e. after the abandoned generation stopped.
    after = await backend.call(Endpoint.COMPLETIONS, {"prompt": "Hi", "max_tokens": 3, "logit_bias": NO_END})
    assert after["usage"]["completion_tokens"] == 3
    assert abandoned is not None and abandoned.cancelled.is_set()
    assert abandoned.sampled < 200, "the generation went on after its client left"


async def test_several_choices_are_refused(backend: LlamaCppBackend) -> None:
    with pytest.raises(InvalidRequest):
        await backend.call(Endpoint.CHAT, {"messages": [{"role": "user", "content": "x"}], "n": 2})


async def test_a_prompt_longer_than_the_context_is_a_clear_error(backend: LlamaCppBackend) -> None:
    with pytest.raises(InvalidRequest):
        await backend.call(Endpoint.COMPLETIONS, {"prompt": "mot " * 5000, "max_tokens": 1})
