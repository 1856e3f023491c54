"""The platform's services wired together once, for the HTTP app and the CLI alike."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from socle.apps.feedback.runner import AnalysisRunner
from socle.apps.feedback.service import FeedbackService
from socle.apps.feedback.taxonomy import load_taxonomy
from socle.audit.service import AuditTrail
from socle.chat.conversations import ConversationService
from socle.compliance.erasure import ErasureService
from socle.compliance.export import ExportService
from socle.compliance.retention import Periods, Retention
from socle.db.session import create_engine, session_factory
from socle.errors import NotFound
from socle.identity.service import IdentityService
from socle.inference.manifest import ModelManifest
from socle.inference.registry import ModelRegistry
from socle.inference.service import InferenceService
from socle.jobs.queue import JobQueue
from socle.jobs.watchdog import JobWatchdog
from socle.jobs.worker import JobWorkers
from socle.quotas.limiter import QuotaLimiter
from socle.quotas.service import QuotaService
from socle.rag.answering import Answering
from socle.rag.collections import CollectionService
from socle.rag.documents import DocumentService
from socle.rag.ingestion import Ingestion
from socle.rag.parsing import Limits, Sandbox
from socle.rag.search import SearchService
from socle.rag.stores import ChunkStore, store_for
from socle.settings import Settings
from socle.usage.events import Sinks
from socle.usage.impact import ImpactEstimator
from socle.usage.metrics import Metrics
from socle.usage.recorder import UsageRecorder
from socle.usage.service import UsageService

log = logging.getLogger("socle")


@dataclass
class Platform:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    identity: IdentityService
    usage: UsageService
    quotas: QuotaService
    collections: CollectionService
    jobs: JobQueue
    documents: DocumentService
    conversations: ConversationService
    feedback: FeedbackService
    audit: AuditTrail
    inference: InferenceService | None = None
    recorder: UsageRecorder | None = None
    metrics: Metrics | None = None
    search: SearchService | None = None
    answering: Answering | None = None
    workers: JobWorkers | None = None
    sandbox: Sandbox | None = None
    feedback_runner: AnalysisRunner | None = None
    feedback_workers: JobWorkers | None = None
    watchdog: JobWatchdog | None = None
    compliance_workers: JobWorkers | None = None
    # Built from the services above (``__post_init__``): the chunk store beside the database, and the duties
    # towards the people whose data the platform holds (erasure, export, retention).
    store: ChunkStore = field(init=False)
    erasure: ErasureService = field(init=False)
    exports: ExportService = field(init=False)
    retention: Retention = field(init=False)
    _retention_schedule: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        settings = self.settings
        self.store = store_for(self.engine.dialect.name)
        self.erasure = ErasureService(self.engine, self.sessions, self.store, self.documents, self.identity,
                                      self.quotas, self.audit)
        self.exports = ExportService(self.sessions, self.documents, self.audit)
        self.retention = Retention(self.engine, self.sessions, self.jobs, self.store, self.documents, self.audit,
                                   Periods(conversations=settings.retention_conversations_days,
                                           usage=settings.retention_usage_days,
                                           documents=settings.retention_documents_days,
                                           feedback=settings.retention_feedback_days,
                                           audit=settings.retention_audit_days,
                                           sessions=settings.retention_sessions_days))

    @classmethod
    def open(cls, settings: Settings) -> "Platform":
        """Storage, identity, usage reports and quota rules: what the CLI's administration commands need."""
        engine = create_engine(settings.resolved_database_url, pool_size=settings.db_pool_size)
        sessions = session_factory(engine)
        jobs = JobQueue(sessions)
        audit = AuditTrail(sessions)
        return cls(settings, engine, sessions,
                   IdentityService(sessions, audit, cache_ttl_s=settings.auth_cache_ttl_s),
                   UsageService(sessions, audit, currency=settings.currency),
                   QuotaService(sessions, audit, refresh_s=settings.quota_refresh_s),
                   CollectionService(sessions, audit), jobs,
                   DocumentService(sessions, jobs, settings.documents_dir, max_bytes=settings.max_upload_bytes),
                   ConversationService(sessions),
                   FeedbackService(sessions, jobs, max_messages=settings.feedback_max_messages,
                                   max_upload_bytes=settings.max_upload_bytes),
                   audit)

    async def start_inference(self, *, workers: bool = True) -> None:
        """Build the model registry from the catalogue, load or connect every backend, record usage; with
        ``workers``, run background jobs in this process too."""
        settings = self.settings
        catalogue = settings.catalogue()
        impacts = ImpactEstimator(settings.electricity_mix, pue=settings.datacenter_pue, wue=settings.datacenter_wue)
        self.recorder = UsageRecorder(self.sessions, {m.id: m for m in catalogue.models}, impacts,
                                      interval_s=settings.usage_flush_interval_s, batch_size=settings.usage_batch_size)
        registry = ModelRegistry(catalogue, health_interval_s=settings.health_interval_s,
                                 manifest=ModelManifest.in_data_dir(settings.data_dir))
        await registry.start()
        self.recorder.start()
        limiter = QuotaLimiter(self.quotas, redis_url=settings.redis_url, key_prefix=settings.redis_key_prefix,
                               fail_open=settings.quota_fail_open, redis_timeout_s=settings.redis_timeout_s)
        self.watchdog = JobWatchdog(self.jobs, stall_s=settings.job_stall_s)
        self.metrics = Metrics(registry, self.watchdog)
        self.inference = InferenceService(registry, max_tokens_limit=settings.max_tokens_limit,
                                          usage=Sinks(self.recorder, self.metrics),
                                          quotas=limiter,
                                          default_completion_tokens=settings.quota_default_completion_tokens,
                                          max_choices=settings.max_choices)
        if workers:  # wherever jobs run, the jobs that nobody takes are watched for
            self.watchdog.start()
        await self._start_rag(workers=workers)
        self._start_feedback()
        if workers and settings.feedback_workers:
            self.start_feedback_workers(settings.feedback_workers)
        if workers:
            self.start_compliance_workers()

    async def _start_rag(self, *, workers: bool) -> None:
        """Search over the store that goes with the database, and the ingestion workers."""
        settings, inference = self.settings, self.inference
        assert inference is not None
        store = self.store
        try:
            embedding_model: str | None = inference.registry.get(settings.rag_embedding_model).id
        except NotFound:
            log.warning("no embeddings model %r in the catalogue: documents are searched by their words only",
                        settings.rag_embedding_model)
            embedding_model = None
        self.search = SearchService(self.sessions, store, inference, embedding_model=embedding_model)
        self.answering = Answering(self.search)
        if workers and settings.ingestion_workers:
            self.sandbox = Sandbox(Limits(max_bytes=settings.max_upload_bytes, max_pages=settings.parse_max_pages,
                                          memory_mb=settings.parse_memory_mb, timeout_s=settings.parse_timeout_s))
            ingestion = Ingestion(self.sessions, self.jobs, self.documents, self.sandbox, inference, store,
                                  embedding_model=embedding_model)
            self.workers = JobWorkers(self.jobs, ingestion.handlers, concurrency=settings.ingestion_workers,
                                      lease_s=settings.job_lease_s, on_give_up=ingestion.give_up)
            self.documents.on_enqueue = self.workers.notify
            self.workers.start()

    def _start_feedback(self) -> None:
        settings, inference = self.settings, self.inference
        assert inference is not None and self.search is not None
        self.feedback_runner = AnalysisRunner(self.sessions, self.identity, inference, self.feedback,
                                              load_taxonomy(settings.feedback_taxonomy),
                                              embedding_model=self.search.embedding_model,
                                              cache_dir=settings.data_dir / "cache" / "feedback")

    def start_feedback_workers(self, concurrency: int = 1) -> None:
        """The feedback app's analyses, on workers of their own: a long analysis never holds up an ingestion."""
        assert self.feedback_runner is not None
        self.feedback_workers = JobWorkers(self.jobs, self.feedback_runner.handlers, concurrency=concurrency,
                                           lease_s=self.settings.job_lease_s, on_give_up=self.feedback_runner.give_up)
        self.feedback.on_enqueue = self.feedback_workers.notify
        self.feedback_workers.start()

    def start_compliance_workers(self) -> None:
        """The daily retention run: scheduled here (once a day across every process), run by a worker."""
        self.compliance_workers = JobWorkers(self.jobs, self.retention.handlers, concurrency=1,
                                             lease_s=self.settings.job_lease_s)
        self.compliance_workers.start()
        self._retention_schedule = asyncio.create_task(self.retention.keep_scheduled(), name="retention-schedule")

    async def close(self) -> None:
        if self.watchdog is not None:
            await self.watchdog.stop()
        if self._retention_schedule is not None:
            self._retention_schedule.cancel()
        if self.compliance_workers is not None:
            await self.compliance_workers.stop()
        if self.feedback_workers is not None:
            await self.feedback_workers.stop()
        if self.workers is not None:
            await self.workers.stop()
        if self.sandbox is not None:
            self.sandbox.close()
        if self.inference is not None:
            await self.inference.registry.close()
        if self.recorder is not None:
            await self.recorder.close()  # writes what is still waiting
        await self.engine.dispose()
