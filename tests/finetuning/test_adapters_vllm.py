"""A fine-tuned model served by vLLM: its adapter is loaded through vLLM's run-time API when the backend
starts, found through the volume both machines share, and loaded again when the server has lost it — tested
against a peer that implements vLLM's adapter API, through a real platform and the official ``openai`` SDK."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from socle.finetuning.engine import TrainingResult
from socle.finetuning.serving import adapter_backends
from socle.inference.backends.llamacpp import LlamaCppBackendConfig
from socle.inference.backends.openai_compat import OpenAIBackendConfig
from socle.settings import ModelConfig
from tests.support.servers import Server, start_server, stop
from tests.support.vllm_peer import start_vllm_peer

FINE_TUNED = "ft:base-model:alice:avis:1"


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url, process = start_vllm_peer(tmp_path_factory.mktemp("vllm-peer"))
    yield url
    stop(process)


@pytest.fixture(scope="module")
def shared_volume(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The platform's folder of adapters and the same folder under another path, as the GPU machine mounts it."""
    root = tmp_path_factory.mktemp("volume")
    here, there = root / "platform" / "fine_tuning", root / "gpu-mount"
    (here / "job-1" / "adapter").mkdir(parents=True)
    (here / "job-1" / "adapter" / "adapter_config.json").write_text(json.dumps({"r": 8, "lora_alpha": 16}))
    there.symlink_to(here)
    return here, there


def _result(adapter_dir: Path, gguf: Path | None = None) -> TrainingResult:
    return TrainingResult(adapter_gguf=gguf, adapter_dir=adapter_dir, steps=4, trained_tokens=100, train_loss=0.5,
                          valid_loss=None, seconds=1.0)


def _base(peer: str, here: Path, there: Path) -> ModelConfig:
    return ModelConfig(id="base-model", type="chat", backends=[
        OpenAIBackendConfig(type="openai", url=f"{peer}/v1", accepts_adapters=True, adapters_dir=here,
                            adapters_dir_remote=str(there))])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, peer: str, shared_volume: tuple[Path, Path]) -> Iterator[Server]:
    here, there = shared_volume
    base = _base(peer, here, there)
    fine_tuned = ModelConfig(id=FINE_TUNED, type="chat",
                             backends=adapter_backends(base, _result(here / "job-1" / "adapter"), FINE_TUNED))
    directory = tmp_path_factory.mktemp("vllm-platform")
    config = directory / "models.yaml"
    models = [model.model_dump(mode="json", exclude_none=True, exclude_defaults=True) | {"type": "chat"}
              for model in (base, fine_tuned)]
    config.write_text(yaml.safe_dump({"models": models}))
    server = start_server(directory / "data", config=config)
    yield server
    stop(server.process)


def test_the_adapter_is_named_by_its_path_as_the_server_sees_it(peer: str, shared_volume: tuple[Path, Path]) -> None:
    here, there = shared_volume
    [backend] = adapter_backends(_base(peer, here, there), _result(here / "job-1" / "adapter"), FINE_TUNED)
    assert isinstance(backend, OpenAIBackendConfig)
    assert backend.model == FINE_TUNED and not backend.accepts_adapters
    assert backend.lora is not None and backend.lora.name == FINE_TUNED
    assert backend.lora.path == f"{there}/job-1/adapter"


def test_a_base_that_cannot_load_adapters_is_refused(peer: str) -> None:
    plain = ModelConfig(id="plain", type="chat", backends=[OpenAIBackendConfig(type="openai", url=f"{peer}/v1")])
    with pytest.raises(ValueError, match="No backend of the model plain"):
        adapter_backends(plain, _result(Path("/nowhere")), "ft:plain:x:y:1")
    # A llama.cpp base needs the GGUF adapter, which a Hugging Face directory's training does not write.
    embedded = ModelConfig(id="small", type="chat", backends=[LlamaCppBackendConfig(type="llamacpp")])
    with pytest.raises(ValueError):
        adapter_backends(embedded, _result(Path("/nowhere")), "ft:small:x:y:1")


def test_the_fine_tuned_model_answers_through_its_adapter_and_survives_a_server_restart(
        server: Server, peer: str) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key=server.admin_key)
    loaded = httpx.get(f"{peer}/_stats").json()
    assert loaded["adapters"] == {FINE_TUNED: loaded["adapters"][FINE_TUNED]}
    assert loaded["adapters"][FINE_TUNED].endswith("gpu-mount/job-1/adapter")

    def ask(model: str) -> str:
        answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Bonjour"}])
        return answer.choices[0].message.content or ""

    assert ask(FINE_TUNED) == f"{FINE_TUNED}: Bonjour"
    assert ask("base-model") == "base: Bonjour"
    stream = client.chat.completions.create(model=FINE_TUNED, stream=True,
                                            messages=[{"role": "user", "content": "Salut"}])
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices) == f"{FINE_TUNED}: Salut"

    httpx.post(f"{peer}/_restart")  # vLLM restarted: it has forgotten the adapter
    assert ask(FINE_TUNED) == f"{FINE_TUNED}: Bonjour"
    assert httpx.get(f"{peer}/_stats").json()["loads"] == 2
