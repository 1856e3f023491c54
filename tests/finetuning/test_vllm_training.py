"""Fine-tuning a model that a vLLM server serves, end to end: the training workers train from the base's Hugging
Face directory (the backend's ``weights``), the adapter lands in the folder shared with the server, and the
fine-tuned model is served by the same server, which loads the adapter at run time under the model's name, with
the key the administrators entered in the browser for the base. Through a real platform, the official ``openai``
SDK, and a peer that implements vLLM's adapter API and requires its key; the training is tiny (two steps)."""
from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from cryptography.fernet import Fernet

from socle.inference.backends.openai_compat import OpenAIBackendConfig
from tests.support.servers import Server, start_server, stop
from tests.support.vllm_peer import start_vllm_peer

pytestmark = pytest.mark.slow
PEER_KEY = "cle-du-serveur-vllm"
BASE = "base-model"  # the peer's own name for its base model
PAIRS = [("Bonjour", "Bonjour ! Que puis-je pour vous ?"), ("Horaires ?", "La mairie ouvre de 9 h à 17 h."),
         ("Adresse ?", "1 place de la mairie."), ("Merci", "Avec plaisir.")]


@pytest.fixture(scope="session")
def hf_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled SmolLM2 as a Hugging Face model directory (what a GPU worker holds of a vLLM model), made once,
    offline, from its GGUF file."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from socle.inference.backends.llamacpp import bundled_smollm2

    gguf = bundled_smollm2()
    directory = tmp_path_factory.mktemp("hf-base") / "SmolLM2-135M-Instruct"
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True,
                                                 dtype=torch.bfloat16)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url, process = start_vllm_peer(tmp_path_factory.mktemp("vllm-peer"), api_key=PEER_KEY)
    yield url
    stop(process)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, peer: str) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("vllm-training")
    config = directory / "models.yaml"  # the file declares one model of the server, its key in the environment
    config.write_text(yaml.safe_dump({"models": [{"id": "autre", "type": "chat", "backends": [
        {"type": "openai", "url": f"{peer}/v1", "model": BASE, "api_key_env": "VLLM_PEER_KEY"}]}]}))
    running = start_server(directory / "data", config=config, extra_env={
        "VLLM_PEER_KEY": PEER_KEY, "SOCLE_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "SOCLE_INGESTION_WORKERS": "0", "SOCLE_FINE_TUNING_THREADS": "2"})
    yield running
    stop(running.process)


def _wait(what: Callable[[], object], until: Callable[[object], bool], *, timeout_s: float) -> object:
    deadline = time.monotonic() + timeout_s
    while True:
        value = what()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not there after {timeout_s} s: {value}")
        time.sleep(0.5)


def test_weights_are_for_a_server_that_loads_adapters() -> None:
    with pytest.raises(ValueError, match="accepts_adapters"):
        OpenAIBackendConfig(type="openai", url="http://gpu1:8000/v1", weights=Path("/models/base"))
    backend = OpenAIBackendConfig.model_validate({"type": "openai", "url": "http://gpu1:8000/v1",
                                                  "accepts_adapters": True, "weights": "/models/base"})
    assert backend.weights == Path("/models/base")


def test_a_model_served_by_vllm_is_fine_tuned_from_its_weights_and_served_with_its_key(
        server: Server, peer: str, hf_base: Path) -> None:
    shared = server.data_dir / "fine_tuning"  # the platform's folder of adapters, which the server reads too
    there = server.data_dir.parent / "gpu-mount"  # the same folder as the GPU machine mounts it
    shared.mkdir(parents=True, exist_ok=True)
    there.symlink_to(shared)
    admin = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"},
                         timeout=30)
    created = admin.post("/catalogue/models", json={
        "model": {"id": "smollm2-vllm", "type": "chat"},
        "backend": {"type": "openai", "url": f"{peer}/v1", "model": BASE, "accepts_adapters": True,
                    "adapters_dir": str(shared), "adapters_dir_remote": str(there), "weights": str(hf_base)},
        "api_key": PEER_KEY})  # entered in the browser: stored sealed
    assert created.status_code == 201, created.text
    assert created.json()["backends"][0]["has_key"]

    user = admin.post("/users", json={"email": "agent-vllm@exemple.gouv.fr", "role": "user"}).json()
    key = admin.post("/keys", json={"name": "k", "user_id": user["id"]}).json()["key"]
    owner = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0, timeout=120)
    _wait(lambda: {m.id for m in owner.models.list().data}, lambda ids: "smollm2-vllm" in ids, timeout_s=30)
    training = b"".join(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]},
                                   ensure_ascii=False).encode() + b"\n" for q, a in PAIRS)
    uploaded = owner.files.create(file=("exemples.jsonl", io.BytesIO(training)), purpose="fine-tune")
    job_id = owner.fine_tuning.jobs.create(
        model="smollm2-vllm", training_file=uploaded.id, suffix="mairie", seed=7,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 2}}}).id

    job = _wait(lambda: owner.fine_tuning.jobs.retrieve(job_id),
                lambda j: j.status in ("succeeded", "failed", "cancelled"), timeout_s=600)
    assert job.status == "succeeded", job.error
    model = job.fine_tuned_model
    assert model == f"ft:smollm2-vllm:agent-vllm:mairie:{job_id}"

    # The PEFT adapter, trained from the Hugging Face directory (no GGUF base, so no GGUF adapter).
    workdir = shared / f"job-{job_id.removeprefix('ftjob-')}"
    adapter = workdir / "adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(hf_base)
    assert not (workdir / "adapter.gguf").exists()

    # The fine-tuned model is its owner's, and its entry keeps the base's key (sealed), never in its settings.
    _wait(lambda: {m.id for m in owner.models.list().data}, lambda ids: model in ids, timeout_s=30)
    [entry] = [e for e in admin.get("/catalogue/models").json()["data"] if e["model"] == model]
    assert [b["has_key"] for b in entry["backends"]] == [True]
    assert PEER_KEY not in json.dumps(entry)

    answer = owner.chat.completions.create(model=model, messages=[{"role": "user", "content": "Horaires ?"}])
    assert answer.choices[0].message.content == f"{model}: Horaires ?"  # the server routed to the adapter
    stats = httpx.get(f"{peer}/_stats").json()
    assert stats["adapters"] == {model: f"{there}/{workdir.name}/adapter"}  # the path as the server sees it
    loads = [call for call in stats["calls"] if call["path"] == "/v1/load_lora_adapter"]
    assert loads and all(call["model"] == model and call["keyed"] for call in loads)
    chats = [call for call in stats["calls"] if call["path"] == "/v1/chat/completions"]
    assert chats[-1] == {"path": "/v1/chat/completions", "model": model, "keyed": True}
    assert all(call["keyed"] for call in stats["calls"])  # the key reached the server on every call
