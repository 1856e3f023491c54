"""The composition root: every service of the platform, the installed apps' included, built once, in one call,
each with its collaborators. The HTTP app, the CLI, the benchmarks and the tests all open it this way.

The mode says what starts (nothing is built half-way, nothing is patched in later):
- ``serve``: the models are loaded, usage is recorded, every job pool with workers configured runs here, the
  daily retention run is scheduled;
- ``batch``: the models and usage too, and only the job pools the command names (an analysis run at the
  console);
- ``admin``: the database only — identity, quotas, usage reports, erasure... — no model is loaded.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from socle.apps import installed_apps
from socle.apps.base import App, Installed, PersonalData
from socle.audit.service import AuditTrail
from socle.batches.runner import BatchRunner, Collaborators
from socle.batches.service import BatchService
from socle.batches.store import BatchStore
from socle.chat.conversations import ConversationService
from socle.chat.turns import ChatTurns
from socle.compliance.erasure import ErasureService
from socle.compliance.export import ExportService
from socle.compliance.retention import Periods, Retention
from socle.db.session import create_engine, session_factory
from socle.files.service import FileService
from socle.finetuning import engine as training_engine
from socle.finetuning.jobs import FineTuningRunner, serve_adapter
from socle.finetuning.jobs import Limits as TrainingLimits
from socle.finetuning.service import FineTuningService
from socle.finetuning.store import FineTuningStore
from socle.identity.invitations import AccountLinks
from socle.identity.oidc import Federation
from socle.identity.permissions import Catalogue
from socle.identity.service import IdentityService
from socle.identity.sessions import SessionStore
from socle.identity.throttle import SignInThrottle
from socle.inference.catalogue_store import CatalogueStore
from socle.inference.manifest import ModelManifest
from socle.inference.registry import ModelRegistry
from socle.inference.sealing import SecretBox
from socle.inference.service import InferenceService
from socle.jobs.kinds import Pool
from socle.jobs.queue import JobQueue
from socle.jobs.watchdog import JobWatchdog
from socle.jobs.worker import JobWorkers
from socle.mail import SmtpMailer
from socle.quotas.limiter import QuotaLimiter, storage_for
from socle.quotas.service import QuotaService
from socle.rag.answering import Answering
from socle.rag.collections import CollectionService
from socle.rag.conversation_files import ConversationFiles
from socle.rag.documents import DocumentService
from socle.rag.ingestion import Ingestion
from socle.rag.parsing import Limits, Sandbox
from socle.rag.search import SearchService
from socle.rag.stores import ChunkStore, store_for
from socle.responses.service import ResponseService
from socle.responses.store import ResponseStore
from socle.settings import Settings
from socle.site.service import SiteService
from socle.usage.events import Sinks
from socle.usage.impact import ImpactEstimator
from socle.usage.metrics import Metrics
from socle.usage.recorder import UsageRecorder
from socle.usage.service import UsageService

log = logging.getLogger("socle")
T = TypeVar("T")


class Mode(StrEnum):
    SERVE = "serve"
    BATCH = "batch"
    ADMIN = "admin"


@dataclass(kw_only=True)
class Platform:
    settings: Settings
    mode: Mode
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    audit: AuditTrail
    jobs: JobQueue
    identity: IdentityService
    usage: UsageService
    quotas: QuotaService
    site: SiteService
    registry: ModelRegistry
    models: CatalogueStore  # the catalogue as the administrators change it; the registry serves it
    recorder: UsageRecorder
    watchdog: JobWatchdog
    metrics: Metrics
    inference: InferenceService
    store: ChunkStore
    collections: CollectionService
    documents: DocumentService
    search: SearchService
    answering: Answering
    sandbox: Sandbox
    ingestion: Ingestion
    conversations: ConversationService
    chat_turns: ChatTurns
    responses: ResponseService  # /v1/responses: OpenAI's Responses API over chat calls, responses stored
    conversation_files: ConversationFiles  # files dropped into a conversation
    files: FileService  # /v1/files: fine-tuning data, batch input
    batches: BatchService  # /v1/batches: requests of a file run by a low-priority job, results as files
    fine_tuning: FineTuningService  # /v1/fine_tuning/jobs: LoRA trainings, served as new models
    erasure: ErasureService
    exports: ExportService
    retention: Retention
    web_sessions: SessionStore
    sign_in_throttle: SignInThrottle
    account_links: AccountLinks  # invitations, password resets, imports of accounts
    identity_provider: Federation  # ProConnect as the site's settings choose it (SOCLE_OIDC_* by default)
    apps: dict[str, Installed] = field(default_factory=dict)
    _running: list[JobWorkers] = field(default_factory=list, repr=False)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, repr=False)
    _started: bool = field(default=False, repr=False)

    @classmethod
    def build(cls, settings: Settings, mode: Mode = Mode.SERVE, *,
              apps: Sequence[App] | None = None) -> Platform:
        """Every service, wired; nothing started (no model loaded, no worker running): see :meth:`start`."""
        engine = create_engine(settings.resolved_database_url, pool_size=settings.db_pool_size)
        sessions = session_factory(engine)
        jobs = JobQueue(sessions)
        audit = AuditTrail(sessions)
        catalogue = settings.catalogue()
        apps = installed_apps() if apps is None else apps
        app_settings = {app.name: app.settings() for app in apps}
        # What the apps add that the platform's own services need from the start: permissions, personal data.
        permissions = Catalogue.of((spec.name, spec.label) for app in apps for spec in app.permissions)
        personal_data = {app.name: tuple(app.personal_data(sessions, app_settings[app.name])) for app in apps}
        every_kind = [data for kinds in personal_data.values() for data in kinds]
        response_store = ResponseStore(sessions, retention_days=settings.retention_conversations_days)
        every_kind.append(response_store)  # stored responses: kept as long as conversations, erased, exported
        batch_store = BatchStore(sessions, retention_days=settings.retention_conversations_days)
        every_kind.append(batch_store)  # batches: the same duties (their files go with the person's files)
        identity = IdentityService(sessions, audit, permissions=permissions, cache_ttl_s=settings.auth_cache_ttl_s)
        quotas = QuotaService(sessions, audit, refresh_s=settings.quota_refresh_s)
        impacts = ImpactEstimator(settings.electricity_mix, pue=settings.datacenter_pue, wue=settings.datacenter_wue)
        box = SecretBox(settings.encryption_keys)  # the secrets kept in the database: backend keys, ProConnect's
        models = CatalogueStore(sessions, audit, box)
        site = SiteService(sessions, audit, settings, box=box, models=models, refresh_s=settings.site_refresh_s,
                           chat_models=[m.id for m in catalogue.models if m.type == "chat"])
        registry = ModelRegistry(catalogue, health_interval_s=settings.health_interval_s,
                                 manifest=ModelManifest.in_data_dir(settings.data_dir), store=models,
                                 refresh_s=settings.catalogue_refresh_s, close_grace_s=settings.shutdown_grace_s)
        recorder = UsageRecorder(sessions, registry.configs, impacts,  # kept current as the catalogue changes
                                 interval_s=settings.usage_flush_interval_s, batch_size=settings.usage_batch_size)
        watchdog = JobWatchdog(jobs, stall_s=settings.job_stall_s)
        metrics = Metrics(registry, watchdog, jobs=jobs, engine=engine)
        counters = storage_for(settings.redis_url, key_prefix=settings.redis_key_prefix,
                               timeout_s=settings.redis_timeout_s)
        limiter = QuotaLimiter(quotas, redis_url=settings.redis_url, key_prefix=settings.redis_key_prefix,
                               fail_open=settings.quota_fail_open, redis_timeout_s=settings.redis_timeout_s,
                               observe=metrics.redis_call if settings.redis_url else None)
        inference = InferenceService(registry, max_tokens_limit=settings.max_tokens_limit,
                                     usage=Sinks(recorder, metrics), quotas=limiter,
                                     default_completion_tokens=settings.quota_default_completion_tokens,
                                     max_choices=settings.max_choices)
        store = store_for(engine.dialect.name, ef_search=settings.rag_pg_ef_search,
                          exact_below=settings.rag_pg_exact_below, hnsw_m=settings.rag_pg_hnsw_m,
                          hnsw_ef_construction=settings.rag_pg_hnsw_ef_construction,
                          lexical_candidates=settings.rag_pg_lexical_candidates)
        documents = DocumentService(sessions, jobs, settings.documents_dir, max_bytes=settings.max_upload_bytes)
        embedding_model = _embedding_model(registry, settings.rag_embedding_model,
                                           named="rag_embedding_model" in settings.model_fields_set)
        search = SearchService(sessions, store, inference, embedding_model=embedding_model)
        sandbox = Sandbox(Limits(max_bytes=settings.max_upload_bytes, max_pages=settings.parse_max_pages,
                                 memory_mb=settings.parse_memory_mb, timeout_s=settings.parse_timeout_s))
        conversations, answering = ConversationService(sessions), Answering(search, inference)
        conversation_files = ConversationFiles(sessions, documents)
        files = FileService(sessions, audit, settings.files_dir, max_bytes=settings.files_max_bytes,
                            fine_tune_max_bytes=settings.files_fine_tune_max_bytes,
                            fine_tune_max_examples=settings.files_fine_tune_max_examples,
                            context_tokens=max((m.max_context_length or 4096 for m in catalogue.models
                                                if m.type == "chat"), default=4096))
        fine_tuning = _fine_tuning(settings, sessions, jobs, audit, files, inference, models)
        batches = _batches(settings, sessions, jobs, files, identity, inference, batch_store)
        platform = cls(
            settings=settings, mode=mode, engine=engine, sessions=sessions, audit=audit, jobs=jobs,
            fine_tuning=fine_tuning,
            identity=identity, usage=UsageService(sessions, audit, currency=settings.currency), quotas=quotas,
            registry=registry, models=models, recorder=recorder, watchdog=watchdog, metrics=metrics, inference=inference,
            store=store, collections=CollectionService(sessions, audit), documents=documents, search=search,
            answering=answering, sandbox=sandbox,
            ingestion=Ingestion(sessions, jobs, documents, sandbox, inference, store, embedding_model=embedding_model,
                                on_ingested=metrics.ingested),
            conversations=conversations, conversation_files=conversation_files, files=files, batches=batches,
            chat_turns=ChatTurns(conversations, inference, answering, conversation_files),
            responses=ResponseService(inference, response_store, answering),
            erasure=ErasureService(engine, sessions, store, documents, identity, quotas, audit, every_kind,
                                   files=files, catalogue=models,
                                   training_folder=fine_tuning.runner.job_dir),
            exports=ExportService(sessions, documents, audit, every_kind, files=files),
            retention=Retention(engine, sessions, jobs, store, documents, audit, _periods(settings), every_kind,
                                chosen=site),
            web_sessions=SessionStore(sessions, lifetime=timedelta(hours=settings.ui_session_hours),
                                      idle=timedelta(minutes=settings.ui_session_idle_minutes)),
            sign_in_throttle=SignInThrottle(counters, per_account=settings.ui_sign_in_failures_per_account,
                                            per_address=settings.ui_sign_in_failures_per_ip,
                                            window_minutes=settings.ui_sign_in_window_minutes),
            identity_provider=_identity_provider(settings, box),
            account_links=AccountLinks(
                sessions, audit, identity, mailer=SmtpMailer.from_settings(settings), public_url=settings.public_url,
                throttle=SignInThrottle(counters, per_account=settings.ui_sign_in_failures_per_account,
                                        per_address=settings.ui_sign_in_failures_per_ip,
                                        window_minutes=settings.ui_sign_in_window_minutes, namespace="password-reset"),
                invitation_ttl=timedelta(hours=settings.invitation_hours),
                reset_ttl=timedelta(minutes=settings.password_reset_minutes)),
            site=site,
        )
        for app in apps:
            services = app.build(platform, app_settings[app.name])
            platform.apps[app.name] = Installed(app, app_settings[app.name], services, tuple(app.pools(services)),
                                                personal_data[app.name])
        metrics.job_kinds(kind.name for pool in platform.pools for kind in pool.kinds)
        return platform

    @property
    def pools(self) -> list[Pool]:
        """Every job pool: the platform's own, then the apps'."""
        return [Pool("ingestion", self.ingestion.kinds, self.settings.ingestion_workers),
                Pool("compliance", self.retention.kinds, 1),
                *self.fine_tuning.pools,
                *self.batches.pools,
                *(pool for installed in self.apps.values() for pool in installed.pools)]

    @property
    def personal_data(self) -> list[PersonalData]:
        """Every kind of personal data the installed apps keep, and the stored responses (the register lists them)."""
        return [*(data for installed in self.apps.values() for data in installed.personal_data), self.responses.store,
                self.batches.store]

    def app(self, kind: type[T]) -> T:
        """An installed app's services, found by their type (``platform.app(MyAppServices)``)."""
        for installed in self.apps.values():
            if isinstance(installed.services, kind):
                return installed.services
        raise LookupError(f"no installed app provides {kind.__name__}")

    async def start(self, *, pools: Collection[str] | None = None) -> None:
        """Start what the mode needs. ``pools``: in ``batch`` mode, the job pools to run here (none by default);
        in ``serve`` mode every pool whose concurrency is not 0 runs (none with ``run_jobs`` false: separate
        workers run them) unless ``pools`` narrows them."""
        if self.mode == Mode.ADMIN:
            return
        await self.registry.start()  # checks the model files, loads in-process models, opens clients
        self._started = True
        self.recorder.start()
        serving_jobs = self.mode == Mode.SERVE and self.settings.run_jobs
        wanted = [pool for pool in self.pools if pool.concurrency > 0] if serving_jobs else []
        if pools is not None:
            wanted = [pool for pool in self.pools if pool.name in pools]
        for pool in wanted:
            workers = JobWorkers(self.jobs, pool.kinds, concurrency=max(pool.concurrency, 1),
                                 lease_s=self.settings.job_lease_s)
            workers.start()
            self._running.append(workers)
        if wanted:  # wherever jobs run, the jobs that nobody takes are watched for
            self.watchdog.start()
        if self.mode == Mode.SERVE:
            self._tasks.append(asyncio.create_task(self.retention.keep_scheduled(), name="retention-schedule"))

    def stop_taking_jobs(self) -> None:
        """The job pools claim nothing more (a stop has begun); the running jobs go on."""
        for workers in self._running:
            workers.stop_taking()

    @property
    def running_jobs(self) -> int:
        return sum(len(workers.running) for workers in self._running)

    async def drain_jobs(self, grace_s: float) -> None:
        """Take no more jobs, and wait ``grace_s`` at most for the running ones to finish."""
        await asyncio.gather(*(workers.drain(grace_s) for workers in self._running))

    async def close(self, *, grace_s: float = 0.0) -> None:
        """Stop everything; running jobs get ``grace_s`` to finish, then are handed back to the queue."""
        await asyncio.gather(*(workers.stop(grace_s) for workers in self._running))
        await self.watchdog.stop()
        await self.account_links.drain()  # the password e-mails still leaving
        for task in self._tasks:
            task.cancel()
        self.sandbox.close()
        if self._started:
            await self.registry.close()
            await self.recorder.close()  # writes what is still waiting
        if self.inference.quotas is not None:
            await self.inference.quotas.close()  # the quota store's connections
        await self.engine.dispose()


def _embedding_model(registry: ModelRegistry, name: str, *, named: bool) -> str | None:
    """The catalogue's model that indexes and searches documents; none: documents are searched by their words.
    A model named on purpose (``SOCLE_RAG_EMBEDDING_MODEL`` set) that the catalogue's file lacks is one added in the
    browser: it is kept (while it is not served, documents are searched by their words)."""
    models = [served for served in registry.models if name in (served.id, *served.config.aliases)]
    if models:
        return models[0].id
    if named:
        log.info("embeddings model %r: not in the catalogue's file, expected among the models added in the browser",
                 name)
        return name
    log.warning("no embeddings model %r in the catalogue: documents are searched by their words only", name)
    return None


def _fine_tuning(settings: Settings, sessions: async_sessionmaker[AsyncSession], jobs: JobQueue, audit: AuditTrail,
                 files: FileService, inference: InferenceService, models: CatalogueStore) -> FineTuningService:
    """The jobs API and its two job kinds; this process trains only where SOCLE_WORKER_ROLES names 'training'."""
    runner = FineTuningRunner(
        FineTuningStore(sessions), files, inference.registry, models,
        lambda kind, payload, key: jobs.enqueue(kind, payload, dedupe_key=key),
        workdir=settings.data_dir / "fine_tuning",
        limits=TrainingLimits(max_examples=settings.files_fine_tune_max_examples,
                              max_bytes=settings.files_fine_tune_max_bytes,
                              tokens_per_s=settings.fine_tuning_tokens_per_s,
                              price_per_1k_tokens=settings.fine_tuning_price_per_1k_tokens,
                              checkpoint_every=settings.fine_tuning_checkpoint_every,
                              threads=settings.fine_tuning_threads),
        train=training_engine.train, adapter_backends=serve_adapter)
    return FineTuningService(sessions, jobs, audit, files, inference, models, runner,
                             unavailable=training_engine.unavailable_reason, trains_here=settings.trains)


def _batches(settings: Settings, sessions: async_sessionmaker[AsyncSession], jobs: JobQueue, files: FileService,
             identity: IdentityService, inference: InferenceService, store: BatchStore) -> BatchService:
    """The batches API and its job kind, in a pool of its own with few workers (low priority)."""
    runner = BatchRunner(store, Collaborators(read_input=files.content_for_owner, write_output=files.create_output,
                                              discard_output=files.discard_output,
                                              principal_of=identity.principal_of, call=inference.call),
                         concurrency=settings.batch_request_concurrency, max_requests=settings.batch_max_requests)
    return BatchService(sessions, jobs, files, store, [Pool("batches", runner.kinds, settings.batch_workers)])


def _periods(settings: Settings) -> Periods:
    return Periods(conversations=settings.retention_conversations_days, usage=settings.retention_usage_days,
                   documents=settings.retention_documents_days, audit=settings.retention_audit_days,
                   sessions=settings.retention_sessions_days)


def _identity_provider(settings: Settings, box: SecretBox) -> Federation:
    secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else ""
    return Federation(box, environment_secret=secret, scopes=settings.oidc_scopes, timeout_s=settings.oidc_timeout_s,
                      require_email_verified=settings.oidc_require_email_verified)

