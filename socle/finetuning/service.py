"""Fine-tuning jobs as their owners see them (``/v1/fine_tuning/jobs``), and who may use what they made.

A job is accepted only if it can run: fine-tuning is installed here (else the reason, 503), the base model is one
the caller may use and that can be trained and serve an adapter, the files are the caller's own ``fine-tune``
files and passed their checks. The job's row and its first queue job are written in one transaction: an accepted
job survives any crash. Everything else happens on the job queue (:mod:`socle.finetuning.jobs`).

Creating a job needs ``models:use`` (a person trains on their own files, and the model is theirs alone); sharing
the model with one's groups is its owner's choice, publishing it to everyone an administrator's (``models:admin``).
"""
from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.audit.service import Action, AuditTrail
from socle.db.models import FineTuningCheckpoint, FineTuningEvent, FineTuningJob, utcnow
from socle.errors import BackendUnavailable, InvalidRequest, NotFound, PermissionDenied
from socle.finetuning.jobs import VALIDATE, FineTuningRunner, resolve, training_base
from socle.finetuning.store import FineTuningStore
from socle.finetuning.validation import Estimate, TrainingData, estimate
from socle.identity.permissions import Permission, Principal, require
from socle.inference.catalogue_store import CatalogueStore
from socle.inference.registry import ServedModel
from socle.inference.service import InferenceService
from socle.jobs.kinds import Pool
from socle.jobs.queue import JobQueue

SUFFIX = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
FINE_TUNE = "fine-tune"


class OwnFile(Protocol):
    purpose: str
    status: str
    status_details: str | None


class OwnFiles(Protocol):
    """What the service needs of the files (:class:`socle.files.service.FileService`)."""

    async def get(self, principal: Principal, file_id: int) -> OwnFile: ...


@dataclass(frozen=True)
class JobRequest:
    """What ``POST /v1/fine_tuning/jobs`` asks, its ids already numbers and ``method`` already unfolded."""

    model: str
    training_file: int
    validation_file: int | None = None
    suffix: str | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)  # values or "auto"
    seed: int | None = None


class FineTuningService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], queue: JobQueue, audit: AuditTrail,
                 files: OwnFiles, inference: InferenceService, catalogue: CatalogueStore, runner: FineTuningRunner,
                 *, unavailable: Callable[[], str | None], trains_here: bool) -> None:
        self._sessions = sessions
        self._queue = queue
        self._audit = audit
        self._files = files
        self._inference = inference
        self._catalogue = catalogue
        self.runner = runner
        self.store = FineTuningStore(sessions)
        self._unavailable = unavailable
        self._trains_here = trains_here

    @property
    def pools(self) -> list[Pool]:
        """Checking files is light and runs wherever jobs run; training runs one at a time, where the role says."""
        return [Pool("fine-tuning", self.runner.validation_kinds, 1),
                Pool("training", self.runner.training_kinds, 1 if self._trains_here else 0)]

    def unavailable_reason(self) -> str | None:
        return self._unavailable()

    def trainable(self, principal: Principal) -> list[str]:
        """The base models this person may fine-tune: the chat models they may use whose weights are here (what
        :meth:`create` accepts), a fine-tuned model excepted."""
        if not principal.can(Permission.MODELS_USE):
            return []
        names = []
        for served in self._inference.list_models(principal):
            if served.config.type != "chat" or served.config.audience is not None:
                continue
            try:
                training_base(served.config)
            except ValueError:
                continue
            names.append(served.id)
        return names

    def estimate(self, examples: int, tokens: int) -> Estimate:
        """What training on a checked file costs with "auto" settings, shown before a job exists (the job's own
        estimate counts again with its model's tokenizer): the same rule as the job's, from the file's counts."""
        counted = TrainingData(examples=[[]] * examples, tokens=tokens, errors=[])
        limits = self.runner.limits
        return estimate(counted, n_epochs=int(resolve({}, examples)["n_epochs"]), tokens_per_s=limits.tokens_per_s,
                        price_per_1k_trained_tokens=limits.price_per_1k_tokens)

    async def create(self, principal: Principal, request: JobRequest) -> FineTuningJob:
        require(principal, Permission.MODELS_USE)
        reason = self._unavailable()
        if reason is not None:
            raise BackendUnavailable(f"Fine-tuning is not available on this platform: {reason}",
                                     code="fine_tuning_unavailable")
        base = self._inference.get_model(principal, request.model)  # a model the caller may not see: 404
        if base.config.type != "chat":
            raise InvalidRequest(f"The model '{base.id}' is a {base.config.type} model: only chat models are "
                                 "fine-tuned.", param="model", code="model_not_supported")
        try:
            training_base(base.config)
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="model", code="model_not_supported") from exc
        await self._checked_file(principal, request.training_file, "training_file")
        if request.validation_file is not None:
            await self._checked_file(principal, request.validation_file, "validation_file")
        if request.suffix is not None and not SUFFIX.match(request.suffix):
            raise InvalidRequest("suffix holds 1 to 64 letters, digits, '.', '_' or '-'.", param="suffix",
                                 code="invalid_value")
        hyper = {name: request.hyperparameters.get(name, "auto")
                 for name in ("n_epochs", "batch_size", "learning_rate_multiplier")}
        seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
        async with self._sessions() as session, session.begin():
            job = FineTuningJob(owner_id=principal.user_id, model=base.id, training_file_id=request.training_file,
                                validation_file_id=request.validation_file, suffix=request.suffix,
                                hyperparameters=hyper, seed=seed, status="validating_files", created_at=utcnow())
            session.add(job)
            await session.flush()
            session.add(FineTuningEvent(job_id=job.id, message=f"Created fine-tuning job: ftjob-{job.id}",
                                        created_at=utcnow()))
            await self._queue.enqueue(VALIDATE, {"job_id": job.id}, dedupe_key=f"fine-tuning-files:{job.id}",
                                      session=session)
            await self._audit.record_in(session, Action.FINE_TUNING_CREATED, actor=principal,
                                        target=("fine_tuning_job", str(job.id)), details={"model": base.id})
        return job

    async def _checked_file(self, principal: Principal, file_id: int, param: str) -> None:
        try:
            stored = await self._files.get(principal, file_id)
        except NotFound as exc:
            raise InvalidRequest(exc.message, param=param, code="invalid_file") from exc
        if stored.purpose != FINE_TUNE:
            raise InvalidRequest(f"File file-{file_id} was uploaded with purpose '{stored.purpose}': a training file "
                                 "needs purpose 'fine-tune'.", param=param, code="invalid_file_purpose")
        if stored.status == "error":
            raise InvalidRequest(f"File file-{file_id} is not a valid training file: {stored.status_details}",
                                 param=param, code=f"invalid_{param}")

    async def list(self, principal: Principal, *, limit: int, after: int | None) -> list[FineTuningJob]:
        return await self.store.list(principal.user_id, limit=limit, after=after)

    async def get(self, principal: Principal, job_id: int) -> FineTuningJob:
        return await self.store.owned(principal.user_id, job_id)

    async def cancel(self, principal: Principal, job_id: int) -> FineTuningJob:
        """A job not started is cancelled at once; a training stops within a second or two (its worker reads the
        mark), keeps its checkpoints, and the job reads ``cancelled``."""
        before = await self.store.owned(principal.user_id, job_id)
        job = await self.store.request_cancel(principal.user_id, job_id)
        if before.status not in ("succeeded", "failed", "cancelled"):
            await self._audit.record(Action.FINE_TUNING_CANCELLED, actor=principal,
                                     target=("fine_tuning_job", str(job_id)))
        return job

    async def events(self, principal: Principal, job_id: int, *, limit: int,
                     after: int | None) -> list[FineTuningEvent]:
        return await self.store.events(principal.user_id, job_id, limit=limit, after=after)

    async def checkpoints(self, principal: Principal, job_id: int, *, limit: int,
                          after: int | None) -> list[FineTuningCheckpoint]:
        return await self.store.checkpoints(principal.user_id, job_id, limit=limit, after=after)

    async def share(self, principal: Principal, model: str, *, group_ids: Sequence[int] | None = None,
                    public: bool | None = None) -> ServedModel:
        """Change who may use a fine-tuned model: its owner shares it with groups of theirs; an administrator
        (``models:admin``) may do that for any group and publish it to everyone. Others do not see the model."""
        admin = principal.can(Permission.MODELS_ADMIN)  # finds every model, as the catalogue's pages show them
        served = self._inference.registry.get(model) if admin else self._inference.get_model(principal, model)
        audience = served.config.audience
        if audience is None:
            raise InvalidRequest(f"The model '{served.id}' is served to everyone: only a fine-tuned model's audience "
                                 "is chosen.", param="model", code="model_not_shareable")
        if principal.user_id != audience.owner_id and not admin:
            raise PermissionDenied(f"Only the owner of '{served.id}' or an administrator shares it.")
        changes: dict[str, Any] = {}
        if group_ids is not None:
            foreign = sorted(set(group_ids) - principal.group_ids)
            if foreign and not admin:
                raise InvalidRequest(f"You may only share with your own groups: you are not a member of group "
                                     f"{foreign[0]}.", param="group_ids", code="not_a_member")
            changes["group_ids"] = tuple(sorted(set(group_ids)))
        if public is not None and public != audience.public:
            if not admin:
                raise PermissionDenied("Only an administrator (permission models:admin) publishes a model to "
                                       "everyone.")
            changes["public"] = public
        if changes:
            await self._catalogue.set_audience(principal, served.id, audience.model_copy(update=changes))
        return self._inference.registry.get(served.id)
