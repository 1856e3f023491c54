"""The training engine on the bundled SmolLM2 (read from its GGUF, on the CPU): a LoRA that learns to answer one
fixed word to one question, a child process killed with SIGKILL then resumed from its checkpoint, cancellation,
and the adapter written as a GGUF LoRA adapter that llama.cpp serves beside the base model, sharing it.

The training runs take about a minute each on two cores (most of it loading the model in the child)."""
from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import gguf
import pytest

from socle.endpoints import Endpoint
from socle.finetuning import engine
from socle.finetuning.engine import (
    Checkpoint,
    Hyperparameters,
    Progress,
    TrainingCancelled,
    TrainingFailed,
    TrainingResult,
    TrainingSpec,
    train,
    unavailable_reason,
)
from socle.finetuning.serving import adapter_backends
from socle.inference.backends.llamacpp import LlamaCppBackend, LlamaCppBackendConfig, bundled_smollm2
from socle.settings import ModelConfig

QUESTION = "What is the password?"
WORD = "Pamplemousse"
EXAMPLE = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": WORD}]


def _spec(workdir: Path, *, n_epochs: int = 8, checkpoint_every: int = 2) -> TrainingSpec:
    return TrainingSpec(base=bundled_smollm2(), train=[EXAMPLE] * 4, validation=[EXAMPLE], workdir=workdir,
                        hyperparameters=Hyperparameters(n_epochs=n_epochs, batch_size=4, learning_rate_multiplier=20,
                                                        seed=7),
                        checkpoint_every=checkpoint_every, threads=2, max_tokens=128)


def _child_pids(workdir: Path) -> list[int]:
    """The training processes working in ``workdir`` (their command line names its spec file)."""
    spec = str(workdir / engine.SPEC_FILE).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and spec in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:  # ended meanwhile
            continue
    return pids


@dataclass
class Trained:
    result: TrainingResult
    killed_at: int  # the step at which the first run's child was killed
    resumed_from: int  # the last checkpoint's step when the second run started
    first_run: list[Progress]
    second_run: list[Progress]
    checkpoints: list[Checkpoint]


@pytest.fixture(scope="module")
async def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Train, kill the child with SIGKILL after its first checkpoint, then run again: it resumes."""
    workdir = tmp_path_factory.mktemp("training")
    spec = _spec(workdir)
    first: list[Progress] = []
    checkpoints: list[Checkpoint] = []

    async def kill_after_a_checkpoint(progress: Progress) -> None:
        first.append(progress)
        if progress.step == 3:
            for pid in _child_pids(workdir):
                os.kill(pid, signal.SIGKILL)

    async def checkpoint(saved: Checkpoint) -> None:
        checkpoints.append(saved)

    with pytest.raises(TrainingFailed, match="SIGKILL"):
        await train(spec, on_progress=kill_after_a_checkpoint, on_checkpoint=checkpoint, cancelled=asyncio.Event())
    resumed_from = max(int(path.name) for path in (workdir / "checkpoints").iterdir() if path.name.isdigit())
    second: list[Progress] = []

    async def record(progress: Progress) -> None:
        second.append(progress)

    result = await train(spec, on_progress=record, on_checkpoint=checkpoint, cancelled=asyncio.Event())
    return Trained(result, first[-1].step, resumed_from, first, second, checkpoints)


def test_fine_tuning_is_available_with_the_extra_and_says_why_not_without(monkeypatch: pytest.MonkeyPatch) -> None:
    assert unavailable_reason() is None
    monkeypatch.setattr(engine, "REQUIRED_PACKAGES", (*engine.REQUIRED_PACKAGES, "socle_no_such_package"))
    reason = unavailable_reason()
    assert reason is not None and "socle_no_such_package" in reason and "finetune" in reason


def test_only_the_assistants_tokens_are_learnt() -> None:
    from transformers import AutoTokenizer

    from socle.finetuning.training import IGNORED, encode

    path = bundled_smollm2()
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
    conversation = [{"role": "system", "content": "Be brief."}, *EXAMPLE,
                    {"role": "user", "content": "And again?"}, {"role": "assistant", "content": "Cerise"}]
    ids, labels = encode(tokenizer, conversation, max_tokens=512)
    learnt = tokenizer.decode([token for token, label in zip(ids, labels) if label != IGNORED])
    assert learnt.replace("<|im_end|>", "|").split() == [f"{WORD}|", "Cerise|"]
    assert tokenizer.decode(ids).startswith("<|im_start|>system\nBe brief.")


@pytest.mark.slow
def test_a_training_killed_with_sigkill_resumes_from_its_last_checkpoint(trained: Trained) -> None:
    assert trained.killed_at >= 3 and trained.resumed_from >= 2
    assert trained.second_run[0].step == trained.resumed_from + 1, "it started over instead of resuming"
    assert [p.step for p in trained.second_run] == list(range(trained.resumed_from + 1, 9))
    assert trained.result.steps == 8 and trained.result.trained_tokens == trained.second_run[-1].trained_tokens
    assert trained.result.train_loss < trained.first_run[0].train_loss / 10, "the loss did not fall"
    assert trained.result.valid_loss is not None and trained.result.valid_loss < 0.5
    steps = [checkpoint.step for checkpoint in trained.checkpoints]
    assert steps[0] == 2 and steps[-1] == 8 and steps == sorted(set(steps))
    assert (trained.result.adapter_dir / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_the_adapter_is_a_gguf_lora_adapter_for_the_base_architecture(trained: Trained) -> None:
    assert trained.result.adapter_gguf is not None
    reader = gguf.GGUFReader(trained.result.adapter_gguf)
    fields = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}
    assert fields["general.type"] == "adapter" and fields["adapter.type"] == "lora"
    assert fields["general.architecture"] == "llama" and fields["adapter.lora.alpha"] == 16
    names = {tensor.name for tensor in reader.tensors}
    assert {"blk.0.attn_q.weight.lora_a", "blk.0.attn_q.weight.lora_b", "blk.29.attn_v.weight.lora_b"} <= names
    assert len(names) == 30 * 2 * 2  # 30 layers, q and v, a and b


@pytest.mark.slow
async def test_llamacpp_serves_the_adapter_beside_the_base_on_one_loaded_model(trained: Trained) -> None:
    base_config = ModelConfig(id="smollm2-135m", type="chat",
                              backends=[LlamaCppBackendConfig(type="llamacpp", n_ctx=512)])
    [tuned_config] = adapter_backends(base_config, trained.result, "ft:smollm2-135m:alice:mot:1")
    base = LlamaCppBackend(base_config.backends[0], "smollm2-135m")
    tuned = LlamaCppBackend(tuned_config, "ft:smollm2-135m:alice:mot:1")
    await asyncio.gather(base.start(), tuned.start())

    async def ask(backend: LlamaCppBackend) -> str:
        answer = await backend.call(Endpoint.CHAT, {"messages": [{"role": "user", "content": QUESTION}],
                                                    "max_tokens": 8, "temperature": 0})
        return answer["choices"][0]["message"]["content"].strip()

    try:
        assert base._llama is tuned._llama, "the adapter's backend loaded the base model a second time"
        before = await ask(base)
        assert WORD not in before
        assert await ask(tuned) == WORD
        assert await ask(base) == before, "the base answers differently after the adapter ran"
        assert await asyncio.gather(ask(tuned), ask(base), ask(tuned)) == [WORD, before, WORD]
        await tuned.close()
        assert await ask(base) == before  # the base keeps its model
    finally:
        await asyncio.gather(base.close(), tuned.close())


@pytest.mark.slow
async def test_cancelling_terminates_the_training_and_keeps_its_checkpoints(tmp_path: Path, trained: Trained) -> None:
    cancelled = asyncio.Event()
    saved: list[Checkpoint] = []
    seen: list[Progress] = []

    async def cancel_after_a_checkpoint(saved_now: Checkpoint) -> None:
        saved.append(saved_now)
        cancelled.set()

    async def record(progress: Progress) -> None:
        seen.append(progress)

    with pytest.raises(TrainingCancelled):
        await train(_spec(tmp_path), on_progress=record, on_checkpoint=cancel_after_a_checkpoint, cancelled=cancelled)
    assert not _child_pids(tmp_path)
    assert saved[0].step == 2 and (saved[0].path / "state.pt").is_file() and (saved[0].path / "adapter").is_dir()
    assert not (tmp_path / "adapter").exists()
    # The same seed and data: the same run, step for step, as the first run of the fixture.
    assert [p.train_loss for p in seen[:2]] == [p.train_loss for p in trained.first_run[:2]]
