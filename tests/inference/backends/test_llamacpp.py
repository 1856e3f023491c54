"""The in-process llama.cpp backend with the bundled model: cancellation, limits, exact usage, and loading
that leaves the process's output alone."""
from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from socle.endpoints import Endpoint
from socle.errors import BackendTimeout, BackendUnavailable, InvalidRequest
from socle.inference.backends.llamacpp import LlamaCppBackend, LlamaCppBackendConfig, bundled_smollm2

# SmolLM2's special tokens (<|endoftext|>, <|im_start|>, <|im_end|>) forbidden: a generation runs its length.
NO_END = {"0": -100, "1": -100, "2": -100}


@pytest.fixture(scope="module")
async def backend():
    backend = LlamaCppBackend(LlamaCppBackendConfig(type="llamacpp", n_ctx=2048, max_queue=3), "smollm2-135m")
    await backend.start()
    yield backend
    await backend.close()


def test_the_bundled_model_is_found_in_its_package() -> None:
    path = bundled_smollm2()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000


async def test_usage_counts_the_tokens_generated(backend: LlamaCppBackend) -> None:
    result = await backend.call(Endpoint.COMPLETIONS, {"prompt": "1, 2, 3,", "max_tokens": 40, "logit_bias": NO_END})
    assert result["choices"][0]["finish_reason"] == "length"
    assert result["usage"]["completion_tokens"] == 40
    assert result["usage"]["prompt_tokens"] == len(backend._llama.tokenize(b"1, 2, 3,"))


async def test_closing_a_stream_stops_the_generation(backend: LlamaCppBackend) -> None:
    stream = backend.stream(Endpoint.COMPLETIONS, {"prompt": "1, 2, 3,", "max_tokens": 1000, "logit_bias": NO_END})
    await anext(stream)
    abandoned = backend.current
    assert abandoned is not None and abandoned.sampled >= 1
    await stream.aclose()
    # The next call runs once the model thread is free, i.e. after the abandoned generation stopped.
    after = await backend.call(Endpoint.COMPLETIONS, {"prompt": "Hi", "max_tokens": 3, "logit_bias": NO_END})
    assert after["usage"]["completion_tokens"] == 3
    assert abandoned.cancelled.is_set()
    assert 1 <= abandoned.sampled < 100, f"{abandoned.sampled} tokens: it went on after its client left"


async def test_a_cancelled_call_stops_the_generation(backend: LlamaCppBackend) -> None:
    task = asyncio.create_task(backend.call(Endpoint.COMPLETIONS, {"prompt": "1, 2,", "max_tokens": 1000,
                                                                  "logit_bias": NO_END}))
    while backend.current is None or backend.current.sampled < 5:
        await asyncio.sleep(0.01)
    running = backend.current
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await backend.call(Endpoint.COMPLETIONS, {"prompt": "Hi", "max_tokens": 1})
    assert running.sampled < 100


async def test_the_time_limit_stops_a_generation() -> None:
    config = LlamaCppBackendConfig(type="llamacpp", n_ctx=1024, timeout_s=0.2)
    backend = LlamaCppBackend(config, "smollm2-135m")
    await backend.start()
    try:
        with pytest.raises(BackendTimeout):
            await backend.call(Endpoint.COMPLETIONS, {"prompt": "1, 2,", "max_tokens": 1000, "logit_bias": NO_END})
    finally:
        await backend.close()


async def test_a_full_queue_answers_unavailable(backend: LlamaCppBackend) -> None:
    body = {"prompt": "1, 2,", "max_tokens": 30, "logit_bias": NO_END}
    admitted = [asyncio.create_task(backend.call(Endpoint.COMPLETIONS, body)) for _ in range(3)]
    await asyncio.sleep(0)
    with pytest.raises(BackendUnavailable):
        await backend.call(Endpoint.COMPLETIONS, body)
    results = await asyncio.gather(*admitted)
    assert all(r["usage"]["completion_tokens"] == 30 for r in results)


async def test_several_choices_are_refused(backend: LlamaCppBackend) -> None:
    with pytest.raises(InvalidRequest):
        await backend.call(Endpoint.CHAT, {"messages": [{"role": "user", "content": "x"}], "n": 2})


async def test_a_prompt_longer_than_the_context_is_a_clear_error(backend: LlamaCppBackend) -> None:
    with pytest.raises(InvalidRequest):
        await backend.call(Endpoint.COMPLETIONS, {"prompt": "mot " * 5000, "max_tokens": 1})


# Loads at once, in rounds: llama-cpp-python points fds 1 and 2 at /dev/null while it loads, and two loads
# overlapping would leave them there (in about one round in two).
LOAD_AT_ONCE = """
import asyncio, os
from socle.inference.backends.llamacpp import LlamaCppBackend, LlamaCppBackendConfig

async def main() -> None:
    for turn in range(5):
        backends = [LlamaCppBackend(LlamaCppBackendConfig(type="llamacpp", n_ctx=256), "m") for _ in range(2)]
        await asyncio.gather(*(backend.start() for backend in backends))
        os.write(1, b"stdout %d\\n" % turn)
        os.write(2, b"stderr %d\\n" % turn)
        await asyncio.gather(*(backend.close() for backend in backends))

asyncio.run(main())
"""


def test_loading_models_at_once_leaves_stdout_and_stderr_alone(tmp_path: Path) -> None:
    log = tmp_path / "process.log"
    with log.open("wb") as output:
        subprocess.run([sys.executable, "-c", LOAD_AT_ONCE], stdout=output, stderr=subprocess.STDOUT, check=True,
                       timeout=300)
    written = log.read_text()
    assert all(f"stdout {turn}" in written and f"stderr {turn}" in written for turn in range(5)), written
