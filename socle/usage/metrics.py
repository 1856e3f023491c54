"""Prometheus metrics, named after the OpenTelemetry GenAI semantic conventions where they exist.

Counters and histograms are fed from the same call records as usage (one observation per call, no
work on the request path beyond that), from ingestion and from the quota store's round trips. Gauges
(backend health, calls in flight, job queues, database pool) are read at scrape time: the job queues with
one aggregate query (:meth:`Metrics.refresh`), so every replica reports the same shared queue. With several
worker processes, ``socle serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a directory of the data directory:
counters and histograms then sum over every worker, while gauges describe the worker that answered the
scrape (its backends' circuits, its database pool).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from socle.endpoints import Endpoint
from socle.inference.registry import ModelRegistry
from socle.jobs.queue import JobQueue, KindStats
from socle.jobs.watchdog import JobWatchdog
from socle.usage.events import CallRecord

# OpenTelemetry's gen_ai.operation.name of each endpoint
_OPERATIONS = {Endpoint.CHAT: "chat", Endpoint.COMPLETIONS: "text_completion", Endpoint.EMBEDDINGS: "embeddings",
               Endpoint.RERANK: "rerank"}
_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)
_REDIS_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
log = logging.getLogger("socle.metrics")


class Metrics:
    """The platform's instruments; ``record`` makes it a usage sink."""

    def __init__(self, registry: ModelRegistry, watchdog: JobWatchdog, *, jobs: JobQueue | None = None,
                 engine: AsyncEngine | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ
        self.requests = Counter("socle_requests", "Calls through the gateway, by outcome.",
                                ["gen_ai_operation_name", "gen_ai_request_model", "status"], registry=self.registry)
        self.refusals = Counter("socle_quota_refusals", "Calls refused by a quota or rate limit.",
                                ["gen_ai_request_model"], registry=self.registry)
        self.duration = Histogram("gen_ai_server_request_duration_seconds",
                                  "Generative AI server request duration (time to last byte).",
                                  ["gen_ai_operation_name", "gen_ai_request_model", "error_type"],
                                  buckets=_DURATION_BUCKETS, registry=self.registry)
        self.ttft = Histogram("gen_ai_server_time_to_first_token_seconds", "Time to generate the first token.",
                              ["gen_ai_operation_name", "gen_ai_request_model"], buckets=_TTFT_BUCKETS,
                              registry=self.registry)
        self.tokens = Histogram("gen_ai_client_token_usage", "Input and output tokens per call.",
                                ["gen_ai_operation_name", "gen_ai_request_model", "gen_ai_token_type"],
                                buckets=_TOKEN_BUCKETS, registry=self.registry)
        self.documents = Counter("socle_ingested_documents", "Documents parsed, chunked and made searchable.",
                                 registry=self.registry)
        self.chunks = Counter("socle_ingested_chunks", "Chunks of the documents ingested.", registry=self.registry)
        self.redis_latency = Histogram("socle_redis_duration_seconds", "The quota store's (Redis) round trips "
                                       "for one call: admitting it, settling it.", ["operation"],
                                       buckets=_REDIS_BUCKETS, registry=self.registry)
        self.redis_errors = Counter("socle_redis_errors", "Quota store (Redis) operations that failed: "
                                    "unreachable, timed out.", ["operation"], registry=self.registry)
        self._children: dict[tuple[str, str, str], _Children] = {}  # by (endpoint, model, status)
        self._redis_timers = {op: self.redis_latency.labels(op) for op in ("admit", "settle")}
        self._redis_failures = {op: self.redis_errors.labels(op) for op in ("admit", "settle")}
        self._backends = _BackendCollector(registry)
        self.registry.register(self._backends)
        self._jobs = _JobCollector(watchdog, jobs)
        self.registry.register(self._jobs)
        self._pool = _PoolCollector(engine)
        self.registry.register(self._pool)

    def ingested(self, chunks: int) -> None:
        """A document made searchable, with its chunks."""
        self.documents.inc()
        self.chunks.inc(chunks)

    def redis_call(self, operation: str, seconds: float, *, failed: bool = False) -> None:
        """One admission or settlement against the quota store (Redis): how long, and whether it failed."""
        self._redis_timers[operation].observe(seconds)
        if failed:
            self._redis_failures[operation].inc()

    def job_kinds(self, kinds: Iterable[str]) -> None:
        """The kinds of job the platform knows: each has its gauges, at zero while none is queued."""
        self._jobs.known(kinds)

    async def refresh(self) -> None:
        """Read what the gauges show from the database, just before a scrape."""
        await self._jobs.refresh()

    def record(self, call: CallRecord) -> None:
        children = self._children.get((call.endpoint, call.model, call.status))
        if children is None:
            children = self._children[(call.endpoint, call.model, call.status)] = self._label(call)
        requests, duration, ttft, tokens_in, tokens_out = children
        requests.inc()
        if duration is None:  # refused by a quota: counted as such, timed no further
            return
        duration.observe(call.latency_ms / 1000)
        if ttft is None:
            return
        if call.ttft_ms is not None:
            ttft.observe(call.ttft_ms / 1000)
        assert tokens_in is not None
        tokens_in.observe(call.prompt_tokens)
        if tokens_out is not None:
            tokens_out.observe(call.completion_tokens)

    def _label(self, call: CallRecord) -> _Children:
        """The labelled series one kind of call feeds (looked up once: ``labels()`` hashes and locks on each
        call). A refusal counts in ``socle_requests`` and in ``socle_quota_refusals`` together."""
        operation = _OPERATIONS.get(call.endpoint, call.endpoint)
        requests = self.requests.labels(operation, call.model, call.status)
        if call.status == "rate_limited":
            refusals = self.refusals.labels(call.model)
            return _Refusal(requests, refusals), None, None, None, None
        error = "" if call.status == "ok" else call.status
        duration = self.duration.labels(operation, call.model, error)
        if call.status != "ok":
            return requests, duration, None, None, None
        return (requests, duration, self.ttft.labels(operation, call.model),
                self.tokens.labels(operation, call.model, "input"),
                None if operation == "embeddings" else self.tokens.labels(operation, call.model, "output"))

    def exposition(self) -> bytes:
        if not self._multiprocess:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged)
        merged.register(self._backends)  # gauges computed live in this worker
        merged.register(self._jobs)
        merged.register(self._pool)
        return generate_latest(merged)


class _Refusal:
    """A refused call's two counters, incremented together."""

    def __init__(self, requests: Counter, refusals: Counter) -> None:
        self._both = (requests, refusals)

    def inc(self) -> None:
        for counter in self._both:
            counter.inc()


_Children = tuple[Counter | _Refusal, Histogram | None, Histogram | None, Histogram | None, Histogram | None]


class _BackendCollector(Collector):
    """Backend health, calls in flight and queued, read from the router at scrape time."""

    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["gen_ai_request_model", "backend"]
        up = GaugeMetricFamily("socle_backend_up", "1 when the backend is in service (circuit closed).", labels=labels)
        busy = GaugeMetricFamily("socle_backend_in_flight", "Calls the backend is serving now.", labels=labels)
        queued = GaugeMetricFamily("socle_backend_queue_depth", "Calls waiting for an in-process model.",
                                   labels=labels)
        for served in self._registry.models:
            for state in served.pool.states:
                names = [served.id, state.backend.name]  # its public label, never its address
                up.add_metric(names, 1.0 if state.healthy and not state.open_until else 0.0)
                busy.add_metric(names, float(state.in_flight))
                queued.add_metric(names, float(state.backend.waiting))
        yield from (up, busy, queued)


class _JobCollector(Collector):
    """The job queues per kind, read from the database at scrape time (:meth:`refresh`): the queue is shared,
    so every replica reports the same figures, whether or not it runs jobs itself."""

    def __init__(self, watchdog: JobWatchdog, jobs: JobQueue | None) -> None:
        self._watchdog = watchdog
        self._queue = jobs
        self._stats: dict[str, KindStats] = {}
        self._kinds: set[str] = set()  # every kind seen: its gauges drop to zero, not out of sight

    def known(self, kinds: Iterable[str]) -> None:
        self._kinds.update(kinds)

    async def refresh(self) -> None:
        if self._queue is None:
            return
        try:
            stats = await self._queue.stats(stalled_after_s=self._watchdog.stall_s)
        except Exception:  # the scrape still answers, with the last figures; the failure is logged
            log.exception("could not read the job queues for /metrics")
            return
        self._stats = {row.kind: row for row in stats}
        self._kinds.update(self._stats)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauges = {
            "queued": GaugeMetricFamily("socle_jobs_queued", "Jobs waiting to run, now or later (a retry waits "
                                        "its backoff).", labels=["kind"]),
            "running": GaugeMetricFamily("socle_jobs_running", "Jobs leased by a live worker.", labels=["kind"]),
            "waiting": GaugeMetricFamily("socle_jobs_waiting", "Jobs due and not started.", labels=["kind"]),
            "stalled": GaugeMetricFamily("socle_jobs_stalled", "Jobs due for longer than SOCLE_JOB_STALL_S and "
                                         "not started.", labels=["kind"]),
            "oldest_wait_s": GaugeMetricFamily("socle_jobs_oldest_wait_seconds", "How long the job due the "
                                               "longest has waited to start (0: none waits).", labels=["kind"]),
            "retrying": GaugeMetricFamily("socle_jobs_retrying", "Jobs queued again after a failed attempt.",
                                          labels=["kind"]),
            "given_up": GaugeMetricFamily("socle_jobs_given_up", "Jobs failed for good (attempts spent or a "
                                          "permanent error), kept until the retention run.", labels=["kind"]),
        }
        for kind in sorted(self._kinds):
            row = self._stats.get(kind)
            for field_name, gauge in gauges.items():
                gauge.add_metric([kind], float(getattr(row, field_name)) if row is not None else 0.0)
        yield from gauges.values()


class _PoolCollector(Collector):
    """The database connection pool of this process: connections in use, and how many it keeps."""

    def __init__(self, engine: AsyncEngine | None) -> None:
        self._engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        used = GaugeMetricFamily("socle_db_pool_checked_out", "Database connections in use in this process.")
        size = GaugeMetricFamily("socle_db_pool_size", "Database connections the pool keeps open (more may be "
                                 "opened beyond, up to the overflow).")
        overflow = GaugeMetricFamily("socle_db_pool_overflow", "Database connections opened beyond the pool's "
                                     "size (negative: fewer than its size are open).")
        pool = self._engine.sync_engine.pool if self._engine is not None else None
        if pool is not None:
            checked_out = getattr(pool, "checkedout", None)
            used.add_metric([], float(checked_out()) if checked_out else 0.0)
            size_of = getattr(pool, "size", None)
            size.add_metric([], float(size_of()) if size_of else 0.0)
            over = getattr(pool, "overflow", None)
            overflow.add_metric([], float(over()) if over else 0.0)
        yield from (used, size, overflow)
