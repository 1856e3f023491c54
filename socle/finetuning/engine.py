"""The training engine: LoRA supervised fine-tuning of a causal language model, run in a child process.

The training itself (:mod:`socle.finetuning.training`) runs in ``python -m socle.finetuning._child``: PyTorch's
threads and memory stay out of the platform's process, the event loop is never blocked, cancelling is
terminating the child, and what the child allocated is returned to the system when it ends. The child reports
JSON lines on its stdout (progress, checkpoints, the result); this module turns them into awaited callbacks.

A rerun with the same ``workdir`` resumes from the last complete checkpoint, so a worker killed mid-training
(kill -9 included: the child ends when its parent's pipe closes) loses at most ``checkpoint_every`` steps.

Nothing here imports torch: the platform runs without the ``finetune`` extra, and :func:`unavailable_reason`
says why fine-tuning is then off.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REQUIRED_PACKAGES = ("torch", "transformers", "peft", "gguf")
SPEC_FILE = "spec.json"
LOG_FILE = "training.log"
_TERMINATE_GRACE_S = 10.0
_LOG_TAIL_CHARS = 2000
# The child reads nothing from a model hub: every model is a file or a directory given by path.
_OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"}


def unavailable_reason() -> str | None:
    """None when the training packages are installed; else why fine-tuning is unavailable (without importing
    them: torch alone takes seconds and hundreds of megabytes)."""
    missing = [name for name in REQUIRED_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        return (f"Fine-tuning needs the optional packages of the 'finetune' extra, not installed here: "
                f"{', '.join(missing)} (pip install 'socle-ia[finetune]').")
    from importlib.metadata import version

    if int(version("transformers").split(".")[0]) >= 5:
        return "Fine-tuning needs transformers 4.x (5.x reads GGUF files differently): pip install 'transformers<5'."
    return None


@dataclass(frozen=True)
class Hyperparameters:
    n_epochs: int = 3
    batch_size: int = 4
    learning_rate_multiplier: float = 1.0
    lora_r: int = 8
    lora_alpha: int = 16
    seed: int = 0


@dataclass(frozen=True)
class TrainingSpec:
    base: Path  # a GGUF file (the bundled SmolLM2) or a Hugging Face model directory
    train: list[list[dict[str, str]]]  # chat examples (messages lists)
    validation: list[list[dict[str, str]]] | None
    hyperparameters: Hyperparameters
    workdir: Path  # checkpoints/ and adapter/ go here; a rerun with the same workdir resumes
    checkpoint_every: int = 20  # steps
    threads: int | None = None  # CPU threads for torch (the cores the platform gives training); None: torch's
    max_tokens: int = 1024  # an example longer than this is cut (its end is not learnt)
    device: str | None = None  # "cpu", "cuda"...; None: a GPU when there is one


@dataclass(frozen=True)
class Progress:
    step: int
    total_steps: int
    epoch: float
    train_loss: float
    valid_loss: float | None
    trained_tokens: int


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path
    train_loss: float
    valid_loss: float | None


@dataclass(frozen=True)
class TrainingResult:
    adapter_gguf: Path | None  # the adapter for llama.cpp (a GGUF base only)
    adapter_dir: Path  # the PEFT adapter (safetensors + adapter_config.json), which vLLM loads
    steps: int
    trained_tokens: int
    train_loss: float
    valid_loss: float | None
    seconds: float


class TrainingCancelled(Exception):
    """``cancelled`` was set: the child was terminated; its checkpoints are kept."""


class TrainingFailed(Exception):
    """The training could not run or did not finish (its message says why, for the job's error)."""


@dataclass
class _Run:
    result: TrainingResult | None = None
    error: str | None = None
    stderr_tail: list[str] = field(default_factory=list)


async def train(spec: TrainingSpec, *, on_progress: Callable[[Progress], Awaitable[None]],
                on_checkpoint: Callable[[Checkpoint], Awaitable[None]], cancelled: asyncio.Event) -> TrainingResult:
    """Train (or resume) the adapter described by ``spec`` in a child process; see the module's docstring."""
    reason = unavailable_reason()
    if reason is not None:
        raise TrainingFailed(reason)
    spec.workdir.mkdir(parents=True, exist_ok=True)
    spec_path = spec.workdir / SPEC_FILE
    spec_path.write_text(json.dumps(spec_to_json(spec)))
    env = {**os.environ, **_OFFLINE}
    if spec.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(spec.threads)
    with (spec.workdir / LOG_FILE).open("ab") as log:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "socle.finetuning._child", str(spec_path), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=log, env=env, limit=1 << 20)
    run = _Run()
    reader = asyncio.create_task(_read_events(child, run, on_progress, on_checkpoint))
    stop = asyncio.create_task(cancelled.wait())
    try:
        await asyncio.wait({reader, stop}, return_when=asyncio.FIRST_COMPLETED)
        if not reader.done():  # cancelled
            await _terminate(child)
            raise TrainingCancelled("The training was cancelled; its checkpoints are kept.")
        reader.result()  # a callback's exception is the caller's
        code = await child.wait()
    finally:
        stop.cancel()
        if child.returncode is None:  # the caller was cancelled, or a callback failed
            reader.cancel()
            await _terminate(child)
    if run.result is not None and code == 0:
        return run.result
    if cancelled.is_set():
        raise TrainingCancelled("The training was cancelled; its checkpoints are kept.")
    raise TrainingFailed(run.error or _exit_reason(code, spec.workdir / LOG_FILE))


async def _read_events(child: asyncio.subprocess.Process, run: _Run,
                       on_progress: Callable[[Progress], Awaitable[None]],
                       on_checkpoint: Callable[[Checkpoint], Awaitable[None]]) -> None:
    assert child.stdout is not None
    async for line in child.stdout:
        event = json.loads(line)
        kind = event.pop("event")
        if kind == "progress":
            await on_progress(Progress(**event))
        elif kind == "checkpoint":
            await on_checkpoint(Checkpoint(**{**event, "path": Path(event["path"])}))
        elif kind == "result":
            run.result = TrainingResult(**{**event, "adapter_dir": Path(event["adapter_dir"]),
                                           "adapter_gguf": event["adapter_gguf"] and Path(event["adapter_gguf"])})
        elif kind == "error":
            run.error = event["message"]


async def _terminate(child: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL if the child has not ended within the grace period."""
    if child.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        child.terminate()
    try:
        await asyncio.wait_for(child.wait(), _TERMINATE_GRACE_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()


def _exit_reason(code: int, log: Path) -> str:
    if code < 0:
        return f"The training process was stopped by signal {signal.Signals(-code).name}; rerun to resume."
    tail = log.read_text(errors="replace")[-_LOG_TAIL_CHARS:] if log.is_file() else ""
    last = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
    return f"The training process failed (exit code {code}){f': {last}' if last else '.'}"


def spec_to_json(spec: TrainingSpec) -> dict[str, Any]:
    return {**dataclasses.asdict(spec), "base": str(spec.base), "workdir": str(spec.workdir)}


def spec_from_json(data: dict[str, Any]) -> TrainingSpec:
    return TrainingSpec(**{**data, "base": Path(data["base"]), "workdir": Path(data["workdir"]),
                           "hyperparameters": Hyperparameters(**data["hyperparameters"])})
