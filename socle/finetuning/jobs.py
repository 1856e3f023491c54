"""The two job kinds of a fine-tuning job, on the platform's durable job queue.

``fine-tuning.validate`` (pool ``fine-tuning``, every worker): the files checked against the base model's own
tokenizer and context, "auto" hyperparameters resolved, the estimate written; the job is then ``queued`` and its
training enqueued. ``fine-tuning.train`` (pool ``training``: one at a time, only in the processes whose
``SOCLE_WORKER_ROLES`` names ``training``): the engine trains in a child process, its progress becomes ``metrics``
events and its checkpoints rows; the adapter is registered in the catalogue as a new model, its owner's alone.

Both are idempotent, as the queue wants: a training taken up again after a crash (kill -9 included: its lease runs
out) passes the same working directory, and the engine resumes from the last checkpoint; the events say so.
Cancelling is a mark on the job's row, read every second by the worker that trains it, wherever it runs.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from socle.db.models import utcnow
from socle.errors import NotFound
from socle.finetuning import engine
from socle.finetuning.model import checkpoint_name, model_card, model_config, model_name
from socle.finetuning.store import TERMINAL, FineTuningStore
from socle.finetuning.validation import TrainingData, estimate, token_counter, validate_training_file
from socle.inference.catalogue_store import CatalogueStore
from socle.inference.registry import ModelRegistry
from socle.jobs.kinds import Kind, Payload
from socle.settings import BackendConfig, ModelConfig

log = logging.getLogger("socle.finetuning")
VALIDATE = "fine-tuning.validate"
TRAIN = "fine-tuning.train"
CANCEL_POLL_S = 1.0


class Train(Protocol):
    def __call__(self, spec: engine.TrainingSpec, *, on_progress: Callable[[engine.Progress], Awaitable[None]],
                 on_checkpoint: Callable[[engine.Checkpoint], Awaitable[None]],
                 cancelled: asyncio.Event) -> Awaitable[engine.TrainingResult]: ...


AdapterBackends = Callable[[ModelConfig, engine.TrainingResult, str], list[BackendConfig]]


class TrainingFiles(Protocol):
    """What the runner needs of the files (:class:`socle.files.service.FileService`)."""

    async def content_for_owner(self, owner_id: int, file_id: int) -> bytes: ...


@dataclass(frozen=True)
class Limits:
    max_examples: int
    max_bytes: int
    tokens_per_s: float
    price_per_1k_tokens: float
    checkpoint_every: int
    threads: int | None = None  # CPU threads a training uses; None: torch's own choice (every core)


def training_base(config: ModelConfig) -> Path:
    """The weights a job trains from: the GGUF file of the model's llama.cpp backend (the bundled SmolLM2 by
    default), or the Hugging Face directory a backend names as ``weights`` (a vLLM backend serving adapters, as the
    training workers see its base). ValueError when the model has none."""
    for backend in config.backends:
        if getattr(backend, "lora", None):
            continue  # a fine-tuned model's own backend: adapters are trained from a base, not stacked
        if getattr(backend, "type", None) == "llamacpp":
            from socle.inference.backends.llamacpp import bundled_smollm2

            return Path(backend.path or bundled_smollm2())  # type: ignore[attr-defined]
        weights = getattr(backend, "weights", None)
        if weights:
            return Path(weights)
    raise ValueError(f"The model '{config.id}' cannot be fine-tuned here: none of its backends holds its weights "
                     "(a llama.cpp GGUF file, or a backend that serves adapters and names its base weights).")


def resolve(requested: dict[str, Any], examples: int) -> dict[str, Any]:
    """The hyperparameters with every "auto" replaced, from the number of examples (as OpenAI does: small sets
    get more epochs, up to 10, so that about 100 examples are seen at least)."""
    auto = {"n_epochs": max(1, min(10, math.ceil(100 / max(examples, 1)))) if examples < 100 else 3,
            "batch_size": max(1, min(8, examples // 25)), "learning_rate_multiplier": 1.0}
    return {name: (auto[name] if requested.get(name, "auto") == "auto" else requested[name]) for name in auto}


class FineTuningRunner:
    def __init__(self, store: FineTuningStore, files: TrainingFiles, registry: ModelRegistry,
                 catalogue: CatalogueStore, enqueue: Callable[[str, Payload, str], Awaitable[int]], *,
                 workdir: Path, limits: Limits, train: Train, adapter_backends: AdapterBackends) -> None:
        self._store = store
        self._files = files
        self._registry = registry
        self._catalogue = catalogue
        self._enqueue = enqueue
        self.workdir = workdir
        self._limits = limits
        self._train = train
        self._adapter_backends = adapter_backends

    @property
    def validation_kinds(self) -> list[Kind]:
        return [Kind(VALIDATE, self.validate, self._given_up)]

    @property
    def training_kinds(self) -> list[Kind]:
        return [Kind(TRAIN, self.run, self._given_up)]

    @property
    def limits(self) -> Limits:
        return self._limits

    def job_dir(self, job_id: int) -> Path:
        return self.workdir / f"job-{job_id}"

    async def _given_up(self, payload: Payload, error: str) -> None:
        await self._store.move(int(payload["job_id"]), "failed", message=f"Fine-tuning job failed: {error}",
                               level="error", only_from=("validating_files", "queued", "running"),
                               error={"code": "job_failed", "message": error[:1000], "param": None})

    # ---- validation ---------------------------------------------------------------------------------------------

    async def validate(self, payload: Payload) -> None:
        job = await self._store.get(int(payload["job_id"]))
        if job is None or job.status != "validating_files":
            return  # cancelled meanwhile, or validated already (this job ran before a crash)
        try:
            base = self._registry.get(job.model).config
        except NotFound as exc:  # taken out of the catalogue since
            await self._fail(job.id, "model_not_found", exc.message, "model")
            return
        try:
            training = await self._read(job.owner_id, job.training_file_id, base)
            validation = (await self._read(job.owner_id, job.validation_file_id, base)
                          if job.validation_file_id is not None else None)
        except NotFound as exc:
            await self._fail(job.id, "invalid_file", exc.message, "training_file")
            return
        for data, param in ((training, "training_file"), (validation, "validation_file")):
            if data is not None and not data.ok:
                await self._fail(job.id, "invalid_training_file" if param == "training_file"
                                 else "invalid_validation_file", f"The {param.replace('_', ' ')} is not valid: "
                                 f"{data.summary() or 'it holds no example.'}", param)
                return
        hyper = {**job.hyperparameters, **resolve(job.hyperparameters, len(training.examples))}
        guess = estimate(training, n_epochs=int(hyper["n_epochs"]), tokens_per_s=self._limits.tokens_per_s,
                         price_per_1k_trained_tokens=self._limits.price_per_1k_tokens)
        message = (f"Validated the training file: {guess.examples} examples, {guess.tokens} tokens; about "
                   f"{guess.trained_tokens} tokens to train, {_duration(guess.seconds)}.")
        if await self._store.move(job.id, "queued", message=message, only_from=("validating_files",),
                                  hyperparameters=hyper, estimate=guess.as_dict()):
            await self._enqueue(TRAIN, {"job_id": job.id}, f"fine-tuning:{job.id}")

    async def _read(self, owner_id: int, file_id: int, base: ModelConfig) -> TrainingData:
        content = await self._files.content_for_owner(owner_id, file_id)
        return await asyncio.to_thread(validate_training_file, content, count_tokens=token_counter(base.backends),
                                       max_examples=self._limits.max_examples, max_bytes=self._limits.max_bytes,
                                       context_tokens=base.max_context_length or 4096)

    async def _fail(self, job_id: int, code: str, message: str, param: str | None) -> None:
        await self._store.move(job_id, "failed", message=message, level="error",
                               only_from=("validating_files", "queued", "running"),
                               error={"code": code, "message": message[:1000], "param": param})

    # ---- training -----------------------------------------------------------------------------------------------

    async def run(self, payload: Payload) -> None:
        job_id = int(payload["job_id"])
        job = await self._store.get(job_id)
        if job is None or job.status in TERMINAL:
            return
        if job.cancel_requested:
            await self._store.move(job_id, "cancelled", message="Fine-tuning job cancelled.",
                                   only_from=("queued", "running"))
            return
        if job.status == "queued":
            await self._store.move(job_id, "running", message="Fine-tuning job started.", only_from=("queued",),
                                   started_at=utcnow())
        else:  # running already: this training was interrupted (a worker stopped or died) and is taken up again
            last = await self._store.last_checkpoint(job_id)
            await self._store.event(job_id, f"Training resumed from the checkpoint at step {last.step}."
                                    if last is not None else "Training restarted: no checkpoint was saved before "
                                    "the interruption.", data={"resumed_from_step": last.step if last else 0})
        try:
            base = self._registry.get(job.model).config
            weights = training_base(base)
            training = await self._read(job.owner_id, job.training_file_id, base)
            validation = (await self._read(job.owner_id, job.validation_file_id, base)
                          if job.validation_file_id is not None else None)
        except (NotFound, ValueError) as exc:
            await self._fail(job_id, "training_unavailable", getattr(exc, "message", str(exc)), "model")
            return
        name = model_name(job.model, await self._store.owner_email(job.owner_id), job.suffix, job_id)
        hyper = job.hyperparameters
        spec = engine.TrainingSpec(
            base=weights, train=training.examples, validation=validation.examples if validation else None,
            hyperparameters=engine.Hyperparameters(n_epochs=int(hyper["n_epochs"]),
                                                   batch_size=int(hyper["batch_size"]),
                                                   learning_rate_multiplier=float(hyper["learning_rate_multiplier"]),
                                                   seed=job.seed),
            workdir=self.job_dir(job_id), checkpoint_every=self._limits.checkpoint_every,
            threads=self._limits.threads)

        async def progress(p: engine.Progress) -> None:
            valid = "" if p.valid_loss is None else f", validation loss={p.valid_loss:.4f}"
            await self._store.event(job_id, f"Step {p.step}/{p.total_steps}: training loss={p.train_loss:.4f}{valid}",
                                    kind="metrics", data={"step": p.step, "total_steps": p.total_steps,
                                                          "epoch": p.epoch, "train_loss": p.train_loss,
                                                          "valid_loss": p.valid_loss,
                                                          "trained_tokens": p.trained_tokens})

        async def checkpoint(c: engine.Checkpoint) -> None:
            await self._store.checkpoint(job_id, c.step, str(c.path), c.train_loss, c.valid_loss)
            await self._store.event(job_id, f"Checkpoint saved at step {c.step}.",
                                    data={"step": c.step, "checkpoint": checkpoint_name(name, c.step)})

        cancelled = asyncio.Event()
        watcher = asyncio.create_task(self._watch_cancel(job_id, cancelled), name=f"fine-tuning-{job_id}-cancel")
        try:
            result = await self._train(spec, on_progress=progress, on_checkpoint=checkpoint, cancelled=cancelled)
        except engine.TrainingCancelled:
            await self._store.move(job_id, "cancelled", message="Fine-tuning job cancelled.", only_from=("running",))
            return
        except engine.TrainingFailed as exc:
            await self._fail(job_id, "training_failed", str(exc), None)
            return
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await self._publish(job_id, base, name, result, training, spec)

    async def _publish(self, job_id: int, base: ModelConfig, name: str, result: engine.TrainingResult,
                       training: TrainingData, spec: engine.TrainingSpec) -> None:
        job = await self._store.get(job_id)
        if job is None or job.status != "running":
            return
        try:
            backends = self._adapter_backends(base, result, name)
        except ValueError as exc:
            await self._fail(job_id, "model_not_served", str(exc), "model")
            return
        owner_email = await self._store.owner_email(job.owner_id)
        card = model_card(base, job, owner_email=owner_email, examples=len(training.examples), tokens=training.tokens,
                          training_file=f"file-{job.training_file_id}", train_loss=result.train_loss,
                          valid_loss=result.valid_loss, at=utcnow())
        config = model_config(base, name, backends, card, job.owner_id)
        await self._catalogue.register(config, owner_id=job.owner_id, details={"fine_tuning_job": f"ftjob-{job_id}"})
        await self._store.move(job_id, "succeeded", message="The job has successfully completed.",
                               only_from=("running",), fine_tuned_model=name, trained_tokens=result.trained_tokens)
        await self._store.event(job_id, f"New fine-tuned model created: {name}",
                                data={"model": name, "seconds": round(result.seconds, 1), "steps": result.steps})
        log.info("fine-tuning job %d succeeded: model %s (%d steps, %.0f s)", job_id, name, result.steps,
                 result.seconds)

    async def _watch_cancel(self, job_id: int, cancelled: asyncio.Event) -> None:
        """The owner's cancel may come through any process: the mark on the row is read every second."""
        while not cancelled.is_set():
            await asyncio.sleep(CANCEL_POLL_S)
            try:
                if await self._store.cancel_requested(job_id):
                    cancelled.set()
            except Exception:  # the database is away for a moment: the training goes on
                log.warning("fine-tuning job %d: could not read whether it was cancelled", job_id)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "of unknown duration"
    return f"about {max(1, round(seconds / 60))} min" if seconds >= 60 else f"about {max(1, round(seconds))} s"


def serve_adapter(base: ModelConfig, result: engine.TrainingResult, name: str) -> list[BackendConfig]:
    """:func:`socle.finetuning.serving.adapter_backends`, imported when a model is published (it names the
    backends' modules, which the job kinds do not need to load)."""
    from socle.finetuning.serving import adapter_backends

    return adapter_backends(base, result, name)
