"""``/v1/fine_tuning/jobs`` (OpenAI-compatible): create, list, read and cancel one's fine-tuning jobs, read their
events and checkpoints; and ``PATCH /v1/models/{model}``: share a fine-tuned model with groups, or publish it.

Ids are OpenAI's strings (``ftjob-7``, ``ftevent-12``, ``ftckpt-3``, ``file-42``), numbers inside; a string that
names nothing is answered as an unknown job.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from socle.api.deps import Caller, platform
from socle.api.routers.models import model_out
from socle.api.schemas import ModelOut, unix_time
from socle.api.strict import StrictRoute
from socle.db.integers import MAX_INTEGER, Id
from socle.db.models import FineTuningCheckpoint, FineTuningEvent, FineTuningJob
from socle.errors import InvalidRequest
from socle.finetuning.model import checkpoint_name, model_name, public_job_id
from socle.finetuning.service import FineTuningService, JobRequest
from socle.finetuning.store import job_not_found

router = APIRouter(prefix="/v1", tags=["fine-tuning"], route_class=StrictRoute)


async def _service(request: Request) -> FineTuningService:
    return platform(request).fine_tuning


FineTuning = Annotated[FineTuningService, Depends(_service)]
Auto = Literal["auto"]


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_epochs: Auto | Annotated[int, Field(ge=1, le=50)] = "auto"
    batch_size: Auto | Annotated[int, Field(ge=1, le=256)] = "auto"
    learning_rate_multiplier: Auto | Annotated[float, Field(gt=0, le=10)] = "auto"


class Supervised(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)


class Method(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["supervised"] = Field(description="Only supervised fine-tuning is offered")
    supervised: Supervised = Field(default_factory=Supervised)


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")  # integrations, metadata...: accepted, not used
    model: str = Field(min_length=1, max_length=200, description="The base model (a chat model of the catalogue)")
    training_file: str = Field(min_length=1, max_length=40, examples=["file-42"])
    validation_file: str | None = Field(default=None, max_length=40)
    suffix: str | None = Field(default=None, max_length=64, description="Up to 64 characters in the model's name")
    hyperparameters: Hyperparameters | None = Field(default=None, description="Deprecated by OpenAI: prefer method")
    method: Method | None = None
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)


class JobOut(BaseModel):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    error: dict[str, Any] | None
    fine_tuned_model: str | None
    finished_at: int | None
    hyperparameters: dict[str, Any]
    method: dict[str, Any]
    model: str
    organization_id: str = "socle"
    result_files: list[str] = []
    seed: int
    status: Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled"]
    trained_tokens: int | None
    training_file: str
    validation_file: str | None
    estimated_finish: int | None
    estimate: dict[str, Any] | None = Field(description="Examples, tokens, duration (s) and cost of the training, "
                                            "once the files are checked")
    user_provided_suffix: str | None
    integrations: list[Any] = []
    metadata: dict[str, str] | None = None

    @classmethod
    def of(cls, job: FineTuningJob) -> JobOut:
        hyper = {name: job.hyperparameters.get(name, "auto")
                 for name in ("n_epochs", "batch_size", "learning_rate_multiplier")}
        estimate = job.estimate or {}
        finish = None
        if job.started_at is not None and job.status == "running" and estimate.get("seconds") is not None:
            finish = int(job.started_at.timestamp() + float(estimate["seconds"]))  # type: ignore[arg-type]
        return cls(id=public_job_id(job.id), created_at=unix_time(job.created_at), error=job.error,
                   fine_tuned_model=job.fine_tuned_model, finished_at=unix_time(job.finished_at),
                   hyperparameters=hyper,
                   method={"type": "supervised", "supervised": {"hyperparameters": hyper}}, model=job.model,
                   seed=job.seed, status=job.status, trained_tokens=job.trained_tokens,  # type: ignore[arg-type]
                   training_file=f"file-{job.training_file_id}",
                   validation_file=f"file-{job.validation_file_id}" if job.validation_file_id else None,
                   estimated_finish=finish, estimate=job.estimate, user_provided_suffix=job.suffix)


class EventOut(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: str
    message: str
    data: dict[str, Any] | None
    type: str

    @classmethod
    def of(cls, event: FineTuningEvent) -> EventOut:
        return cls(id=f"ftevent-{event.id}", created_at=unix_time(event.created_at), level=event.level,
                   message=event.message, data=event.data, type=event.type)


class CheckpointOut(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: dict[str, Any]
    step_number: int


class Page(BaseModel):
    object: Literal["list"] = "list"
    data: list[Any]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None


class Share(BaseModel):
    model_config = ConfigDict(extra="forbid")
    group_ids: list[Id] | None = Field(default=None, max_length=100, description="Groups whose members may use "
                                       "the model (the owner's own groups); [] shares it with none")
    public: bool | None = Field(default=None, description="Every user may use it (administrators only)")




def _number(value: str | None, prefix: str, *, param: str) -> int | None:
    """``ftjob-7`` to 7 (a bare number too); None for None; anything else is refused, naming ``param``."""
    if value is None:
        return None
    number = value.removeprefix(prefix)
    if not (number.isascii() and number.isdigit()) or not 1 <= int(number) <= MAX_INTEGER:
        raise InvalidRequest(f"'{value}' is not a valid id: expected '{prefix}<number>'.", param=param,
                             code="invalid_id")
    return int(number)


def _job_id(value: str) -> int:
    """A job's id in a path; one that names no job is an unknown job (404), as another person's is."""
    number = value.removeprefix("ftjob-")
    if not (number.isascii() and number.isdigit()) or not 1 <= int(number) <= MAX_INTEGER:
        raise job_not_found(value)
    return int(number)


def _page(items: list[Any], limit: int) -> Page:
    shown = items[:limit]
    return Page(data=shown, has_more=len(items) > limit, first_id=shown[0].id if shown else None,
                last_id=shown[-1].id if shown else None)


@router.post("/fine_tuning/jobs", response_model=JobOut, summary="Create a fine-tuning job")
async def create_job(body: JobCreate, caller: Caller, fine_tuning: FineTuning) -> JobOut:
    if body.method is not None and body.hyperparameters is not None:
        raise InvalidRequest("Give the hyperparameters in method.supervised.hyperparameters or in hyperparameters, "
                             "not both.", param="hyperparameters")
    hyper = body.method.supervised.hyperparameters if body.method is not None else body.hyperparameters
    request = JobRequest(
        model=body.model, suffix=body.suffix, seed=body.seed,
        training_file=_number(body.training_file, "file-", param="training_file"),  # type: ignore[arg-type]
        validation_file=_number(body.validation_file, "file-", param="validation_file"),
        hyperparameters=(hyper or Hyperparameters()).model_dump())
    return JobOut.of(await fine_tuning.create(caller, request))


@router.get("/fine_tuning/jobs", response_model=Page, summary="The caller's fine-tuning jobs, newest first")
async def list_jobs(caller: Caller, fine_tuning: FineTuning, limit: int = Query(20, ge=1, le=100),
                    after: str | None = Query(None, description="A job id: the page after it")) -> Page:
    jobs = await fine_tuning.list(caller, limit=limit + 1, after=_number(after, "ftjob-", param="after"))
    return _page([JobOut.of(job) for job in jobs], limit)


@router.get("/fine_tuning/jobs/{job_id}", response_model=JobOut, summary="One of the caller's fine-tuning jobs")
async def get_job(job_id: str, caller: Caller, fine_tuning: FineTuning) -> JobOut:
    return JobOut.of(await fine_tuning.get(caller, _job_id(job_id)))


@router.post("/fine_tuning/jobs/{job_id}/cancel", response_model=JobOut, summary="Cancel a fine-tuning job")
async def cancel_job(job_id: str, caller: Caller, fine_tuning: FineTuning) -> JobOut:
    return JobOut.of(await fine_tuning.cancel(caller, _job_id(job_id)))


@router.get("/fine_tuning/jobs/{job_id}/events", response_model=Page, summary="A job's events, newest first "
            "(its progress: 'metrics' events with the step and the losses)")
async def list_events(job_id: str, caller: Caller, fine_tuning: FineTuning, limit: int = Query(20, ge=1, le=1000),
                      after: str | None = Query(None, description="An event id: the page after it")) -> Page:
    events = await fine_tuning.events(caller, _job_id(job_id), limit=limit + 1,
                                      after=_number(after, "ftevent-", param="after"))
    return _page([EventOut.of(event) for event in events], limit)


@router.get("/fine_tuning/jobs/{job_id}/checkpoints", response_model=Page, summary="A job's checkpoints, newest "
            "first")
async def list_checkpoints(job_id: str, caller: Caller, fine_tuning: FineTuning,
                           limit: int = Query(10, ge=1, le=1000),
                           after: str | None = Query(None, description="A checkpoint id: the page after it")) -> Page:
    number = _job_id(job_id)
    job = await fine_tuning.get(caller, number)
    found = await fine_tuning.checkpoints(caller, number, limit=limit + 1,
                                          after=_number(after, "ftckpt-", param="after"))
    model = job.fine_tuned_model or model_name(job.model, caller.email, job.suffix, job.id)  # the caller owns it
    return _page([_checkpoint(job, model, checkpoint) for checkpoint in found], limit)


def _checkpoint(job: FineTuningJob, model: str, checkpoint: FineTuningCheckpoint) -> CheckpointOut:
    return CheckpointOut(id=f"ftckpt-{checkpoint.id}", created_at=unix_time(checkpoint.created_at),
                         fine_tuned_model_checkpoint=checkpoint_name(model, checkpoint.step),
                         fine_tuning_job_id=public_job_id(job.id), step_number=checkpoint.step,
                         metrics={"step": checkpoint.step, "train_loss": checkpoint.train_loss,
                                  "valid_loss": checkpoint.valid_loss})


@router.patch("/models/{model_id:path}", response_model=ModelOut, summary="Share a fine-tuned model with groups, "
              "or publish it to everyone (administrators)")
async def share_model(model_id: str, body: Share, caller: Caller, fine_tuning: FineTuning) -> ModelOut:
    return model_out(await fine_tuning.share(caller, model_id, group_ids=body.group_ids, public=body.public))
