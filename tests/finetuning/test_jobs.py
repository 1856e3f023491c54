"""Fine-tuning jobs in the platform's own services, on real SQLite and PostgreSQL: what a job refuses before it
runs, the statuses it walks through on the job queue, cancelling, a failed training, a training taken up again
after an interruption, and which processes train (SOCLE_WORKER_ROLES).

The trainings here are the engine's peers: functions shaped as :func:`socle.finetuning.engine.train` that report
progress and checkpoints, fail or wait to be cancelled, so that every path of the job runs in a second; the real
training runs in tests/e2e/test_fine_tuning.py."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from socle.db import migrate
from socle.db.models import Job, Role, User
from socle.errors import BackendUnavailable, InvalidRequest, NotFound
from socle.finetuning import engine
from socle.finetuning.jobs import TRAIN, VALIDATE, FineTuningRunner, Limits, resolve, serve_adapter
from socle.finetuning.service import FineTuningService, JobRequest
from socle.identity.permissions import SYSTEM, Principal
from socle.inference.audience import Audience
from socle.platform import Mode, Platform
from socle.settings import ModelConfig, Settings

EXAMPLE = b'{"messages": [{"role": "user", "content": "Bonjour"}, {"role": "assistant", "content": "Bonjour !"}]}\n'
Train = Callable[..., Awaitable[engine.TrainingResult]]


@pytest.fixture(params=["sqlite", "postgres"])
async def platform(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Platform]:
    url = (f"sqlite+aiosqlite:///{tmp_path / 'socle.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_database"))
    migrate.upgrade(url)
    opened = Platform.build(Settings(data_dir=tmp_path, database_url=url, _env_file=None),  # type: ignore[call-arg]
                            Mode.ADMIN)
    yield opened
    await opened.close()


async def person(p: Platform, email: str) -> Principal:
    async with p.sessions() as session, session.begin():
        role = await session.scalar(select(Role).where(Role.name == "user"))
        assert role is not None
        user = User(email=email, name=email, role=role)
        session.add(user)
        await session.flush()
        return Principal(user_id=user.id, email=email, role=role.name, permissions=frozenset(role.permissions))


def service(p: Platform, train: Train, *, unavailable: str | None = None) -> FineTuningService:
    """The platform's fine-tuning service with ``train`` in the engine's place."""
    runner = FineTuningRunner(p.fine_tuning.store, p.files, p.registry, p.models,
                              lambda kind, payload, key: p.jobs.enqueue(kind, payload, dedupe_key=key),
                              workdir=p.settings.data_dir / "fine_tuning",
                              limits=Limits(max_examples=100, max_bytes=1 << 20, tokens_per_s=80.0,
                                            price_per_1k_tokens=0.5, checkpoint_every=2),
                              train=train, adapter_backends=serve_adapter)
    return FineTuningService(p.sessions, p.jobs, p.audit, p.files, p.inference, p.models, runner,
                             unavailable=lambda: unavailable, trains_here=True)


async def queued_kinds(p: Platform) -> list[str]:
    async with p.sessions() as session:
        return list(await session.scalars(select(Job.kind).where(Job.status == "queued").order_by(Job.id)))


async def never(*args: object, **kwargs: object) -> engine.TrainingResult:
    raise AssertionError("no training should start")


async def new_job(p: Platform, fine_tuning: FineTuningService, owner: Principal, **hyper: object) -> int:
    stored = await p.files.create(owner, "train.jsonl", EXAMPLE * 10, "fine-tune")
    job = await fine_tuning.create(owner, JobRequest(model="smollm2-135m", training_file=stored.id, suffix="essai",
                                                     hyperparameters=hyper or {"n_epochs": 1}))
    return job.id


async def test_a_job_walks_through_validation_to_the_queue(platform: Platform) -> None:
    fine_tuning = service(platform, never)
    owner = await person(platform, "a@x.gouv.fr")
    job_id = await new_job(platform, fine_tuning, owner, n_epochs=2, batch_size="auto")
    job = await fine_tuning.get(owner, job_id)
    assert (job.status, job.hyperparameters["batch_size"]) == ("validating_files", "auto")
    assert await queued_kinds(platform) == [VALIDATE]  # accepted with its row, in one transaction

    await fine_tuning.runner.validate({"job_id": job_id})
    job = await fine_tuning.get(owner, job_id)
    assert job.status == "queued"
    assert job.hyperparameters == {"n_epochs": 2, "batch_size": 1, "learning_rate_multiplier": 1.0}
    assert job.estimate is not None and job.estimate["examples"] == 10 and job.estimate["tokens"] > 0
    assert job.estimate["cost_eur"] == pytest.approx(job.estimate["trained_tokens"] / 1000 * 0.5, abs=1e-4)
    assert await queued_kinds(platform) == [VALIDATE, TRAIN]
    await fine_tuning.runner.validate({"job_id": job_id})  # run twice (a crash): nothing more happens
    assert await queued_kinds(platform) == [VALIDATE, TRAIN]
    messages = [e.message for e in await fine_tuning.events(owner, job_id, limit=10, after=None)]
    assert messages[-1] == f"Created fine-tuning job: ftjob-{job_id}"
    assert messages[0].startswith("Validated the training file: 10 examples")


def test_auto_hyperparameters_follow_the_size_of_the_data() -> None:
    assert resolve({"n_epochs": "auto", "batch_size": "auto"}, 10) == {"n_epochs": 10, "batch_size": 1,
                                                                        "learning_rate_multiplier": 1.0}
    assert resolve({}, 1000) == {"n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": 1.0}
    assert resolve({"n_epochs": 1, "learning_rate_multiplier": 2.0}, 1000)["learning_rate_multiplier"] == 2.0


async def test_what_a_job_refuses_before_it_runs(platform: Platform) -> None:
    fine_tuning = service(platform, never)
    owner, other = await person(platform, "b@x.gouv.fr"), await person(platform, "c@x.gouv.fr")
    good = await platform.files.create(owner, "train.jsonl", EXAMPLE, "fine-tune")
    bad = await platform.files.create(owner, "bad.jsonl", EXAMPLE + b'{"messages": []}\n', "fine-tune")
    batch = await platform.files.create(owner, "batch.jsonl", EXAMPLE, "batch")

    async def refused(request: JobRequest, who: Principal = owner) -> InvalidRequest | NotFound:
        with pytest.raises((InvalidRequest, NotFound)) as caught:
            await fine_tuning.create(who, request)
        return caught.value

    error = await refused(JobRequest(model="smollm2-135m", training_file=bad.id))
    assert (error.param, error.code) == ("training_file", "invalid_training_file") and "line 2" in error.message
    error = await refused(JobRequest(model="smollm2-135m", training_file=batch.id))
    assert error.code == "invalid_file_purpose"
    error = await refused(JobRequest(model="smollm2-135m", training_file=good.id), other)  # another person's file
    assert (error.param, error.code) == ("training_file", "invalid_file")
    error = await refused(JobRequest(model="multilingual-e5-small", training_file=good.id))
    assert (error.param, error.code) == ("model", "model_not_supported")
    error = await refused(JobRequest(model="absent", training_file=good.id))
    assert isinstance(error, NotFound) and error.code == "model_not_found"
    error = await refused(JobRequest(model="smollm2-135m", training_file=good.id, suffix="pas d'espace"))
    assert error.param == "suffix"

    with pytest.raises(BackendUnavailable) as unavailable:
        await service(platform, never, unavailable="torch is missing").create(
            owner, JobRequest(model="smollm2-135m", training_file=good.id))
    assert unavailable.value.code == "fine_tuning_unavailable" and "torch is missing" in unavailable.value.message
    assert await fine_tuning.list(owner, limit=10, after=None) == []


async def test_jobs_are_their_owners_alone(platform: Platform) -> None:
    fine_tuning = service(platform, never)
    owner, other = await person(platform, "d@x.gouv.fr"), await person(platform, "e@x.gouv.fr")
    job_id = await new_job(platform, fine_tuning, owner)
    for read in (fine_tuning.get(other, job_id), fine_tuning.cancel(other, job_id),
                 fine_tuning.events(other, job_id, limit=10, after=None),
                 fine_tuning.checkpoints(other, job_id, limit=10, after=None)):
        with pytest.raises(NotFound):
            await read
    assert await fine_tuning.list(other, limit=10, after=None) == []
    assert (await fine_tuning.get(owner, job_id)).status == "validating_files"  # the attempt to cancel did nothing


async def test_a_job_cancelled_before_it_trains_never_trains(platform: Platform) -> None:
    fine_tuning = service(platform, never)
    owner = await person(platform, "f@x.gouv.fr")
    job_id = await new_job(platform, fine_tuning, owner)
    assert (await fine_tuning.cancel(owner, job_id)).status == "cancelled"
    await fine_tuning.runner.validate({"job_id": job_id})
    await fine_tuning.runner.run({"job_id": job_id})
    job = await fine_tuning.get(owner, job_id)
    assert job.status == "cancelled" and job.finished_at is not None
    assert await queued_kinds(platform) == [VALIDATE]  # no training was enqueued


async def queued_job(platform: Platform, fine_tuning: FineTuningService, owner: Principal) -> int:
    job_id = await new_job(platform, fine_tuning, owner)
    await fine_tuning.runner.validate({"job_id": job_id})
    return job_id


async def test_cancelling_a_running_training_stops_it(platform: Platform) -> None:
    started = asyncio.Event()

    async def until_cancelled(spec: engine.TrainingSpec, *, on_progress: Callable[..., Awaitable[None]],
                              on_checkpoint: Callable[..., Awaitable[None]],
                              cancelled: asyncio.Event) -> engine.TrainingResult:
        await on_progress(engine.Progress(step=1, total_steps=5, epoch=0.2, train_loss=2.5, valid_loss=None,
                                          trained_tokens=40))
        await on_checkpoint(engine.Checkpoint(step=1, path=spec.workdir / "1", train_loss=2.5, valid_loss=None))
        started.set()
        await cancelled.wait()
        raise engine.TrainingCancelled("cancelled")

    fine_tuning = service(platform, until_cancelled)
    owner = await person(platform, "g@x.gouv.fr")
    job_id = await queued_job(platform, fine_tuning, owner)
    running = asyncio.create_task(fine_tuning.runner.run({"job_id": job_id}))
    await asyncio.wait_for(started.wait(), 10)
    assert (await fine_tuning.get(owner, job_id)).status == "running"
    assert (await fine_tuning.cancel(owner, job_id)).status == "running"  # the worker reads the mark
    await asyncio.wait_for(running, 10)
    job = await fine_tuning.get(owner, job_id)
    assert job.status == "cancelled" and job.fine_tuned_model is None
    events = await fine_tuning.events(owner, job_id, limit=20, after=None)
    assert events[0].message == "Fine-tuning job cancelled."
    metrics = [e for e in events if e.type == "metrics"]
    assert [(m.message, m.data["step"], m.data["train_loss"]) for m in metrics] == [
        ("Step 1/5: training loss=2.5000", 1, 2.5)]
    assert [c.step for c in await fine_tuning.checkpoints(owner, job_id, limit=10, after=None)] == [1]


async def test_a_failed_training_fails_the_job_with_its_reason(platform: Platform) -> None:
    async def failing(spec: engine.TrainingSpec, **callbacks: object) -> engine.TrainingResult:
        raise engine.TrainingFailed("The training process failed (exit code 1): out of memory")

    fine_tuning = service(platform, failing)
    owner = await person(platform, "h@x.gouv.fr")
    job_id = await queued_job(platform, fine_tuning, owner)
    await fine_tuning.runner.run({"job_id": job_id})
    job = await fine_tuning.get(owner, job_id)
    assert job.status == "failed" and job.error == {
        "code": "training_failed", "message": "The training process failed (exit code 1): out of memory", "param": None}
    events = await fine_tuning.events(owner, job_id, limit=1, after=None)
    assert events[0].level == "error" and "out of memory" in events[0].message


async def test_a_training_taken_up_again_says_where_it_resumes(platform: Platform) -> None:
    """The first run stops as a worker killed mid-training would (its task cancelled); the second finds the job
    running with a checkpoint, says it resumes from it, and gets the same working directory."""
    workdirs: list[Path] = []

    async def interrupted(spec: engine.TrainingSpec, *, on_progress: Callable[..., Awaitable[None]],
                          on_checkpoint: Callable[..., Awaitable[None]],
                          cancelled: asyncio.Event) -> engine.TrainingResult:
        workdirs.append(spec.workdir)
        await on_checkpoint(engine.Checkpoint(step=2, path=spec.workdir / "2", train_loss=2.0, valid_loss=None))
        await asyncio.Event().wait()  # until the worker goes away
        raise AssertionError("unreachable")

    async def failing_after(spec: engine.TrainingSpec, **callbacks: object) -> engine.TrainingResult:
        workdirs.append(spec.workdir)
        raise engine.TrainingFailed("stop here")

    owner = await person(platform, "i@x.gouv.fr")
    first = service(platform, interrupted)
    job_id = await queued_job(platform, first, owner)
    running = asyncio.create_task(first.runner.run({"job_id": job_id}))
    while not await first.checkpoints(owner, job_id, limit=1, after=None):
        await asyncio.sleep(0.05)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert (await first.get(owner, job_id)).status == "running"

    await service(platform, failing_after).runner.run({"job_id": job_id})
    assert workdirs[0] == workdirs[1] == first.runner.job_dir(job_id)
    messages = [e.message for e in reversed(await first.events(owner, job_id, limit=20, after=None))]
    assert messages.count("Fine-tuning job started.") == 1
    assert "Training resumed from the checkpoint at step 2." in messages


def test_only_the_training_role_trains(tmp_path: Path) -> None:
    def pools(roles: str | None) -> dict[str, int]:
        extra = {} if roles is None else {"worker_roles": roles}
        settings = Settings(data_dir=tmp_path, _env_file=None, **extra)  # type: ignore[call-arg]
        return {pool.name: pool.concurrency for pool in Platform.build(settings, Mode.ADMIN).pools}

    assert pools(None)["training"] == 1 and pools(None)["fine-tuning"] == 1  # embedded: everything here
    assert pools("api,jobs")["training"] == 0 and pools("api,jobs")["fine-tuning"] == 1
    with pytest.raises(ValueError, match="unknown role gpu"):
        Settings(worker_roles="api,gpu", _env_file=None)  # type: ignore[call-arg]


async def test_an_administrators_edit_keeps_a_fine_tuned_models_audience(platform: Platform) -> None:
    """The catalogue's page edits a model's settings from its form, which has no audience: the audience stays, so
    that saving a description never publishes someone's model."""
    owner = await person(platform, "j@x.gouv.fr")
    config = ModelConfig(id="ft:smollm2-135m:j::ftjob-9", type="chat", backends=[{"type": "llamacpp"}],
                         audience=Audience(owner_id=owner.user_id, group_ids=(4,)))
    await platform.models.register(config, owner_id=owner.user_id, details={"fine_tuning_job": "ftjob-9"})
    entry = next(e for e in await platform.models.entries(SYSTEM) if e.name == config.id)
    assert entry.editable and entry.config.audience == config.audience
    await platform.models.update(SYSTEM, entry.id, {"type": "chat", "owned_by": "service"})
    served = {m.id: m for m in (await platform.models.snapshot()).models}[config.id]
    assert served.owned_by == "service" and served.audience == Audience(owner_id=owner.user_id, group_ids=(4,))
    await platform.models.set_audience(SYSTEM, config.id, served.audience.model_copy(update={"public": True}))
    assert {m.id: m for m in (await platform.models.snapshot()).models}[config.id].audience.public
