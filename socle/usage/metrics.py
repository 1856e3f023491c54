"""Prometheus metrics, named after the OpenTelemetry GenAI semantic conventions where they exist.

Counters and histograms are fed from the same call records as usage (one observation per call, no
work on the request path beyond that). Gauges (backend health, calls in flight, queue depth) are read
at scrape time. With several worker processes, ``socle serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a
directory of the data directory: counters and histograms then sum over every worker, while gauges
describe the worker that answered the scrape.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from socle.endpoints import Endpoint
from socle.inference.registry import ModelRegistry
from socle.jobs.watchdog import JobWatchdog
from socle.usage.events import CallRecord

# OpenTelemetry's gen_ai.operation.name of each endpoint
_OPERATIONS = {Endpoint.CHAT: "chat", Endpoint.COMPLETIONS: "text_completion", Endpoint.EMBEDDINGS: "embeddings",
               Endpoint.RERANK: "rerank"}
_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)


class Metrics:
    """The platform's instruments; ``record`` makes it a usage sink."""

    def __init__(self, registry: ModelRegistry, watchdog: JobWatchdog) -> None:
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
        self._backends = _BackendCollector(registry)
        self.registry.register(self._backends)
        self._jobs = _JobCollector(watchdog)
        self.registry.register(self._jobs)

    def record(self, call: CallRecord) -> None:
        operation = _OPERATIONS.get(call.endpoint, call.endpoint)
        self.requests.labels(operation, call.model, call.status).inc()
        if call.status == "rate_limited":
            self.refusals.labels(call.model).inc()
            return
        error = "" if call.status == "ok" else call.status
        self.duration.labels(operation, call.model, error).observe(call.latency_ms / 1000)
        if call.status != "ok":
            return
        if call.ttft_ms is not None:
            self.ttft.labels(operation, call.model).observe(call.ttft_ms / 1000)
        self.tokens.labels(operation, call.model, "input").observe(call.prompt_tokens)
        if operation != "embeddings":
            self.tokens.labels(operation, call.model, "output").observe(call.completion_tokens)

    def exposition(self) -> bytes:
        if not self._multiprocess:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged)
        merged.register(self._backends)  # gauges computed live in this worker
        merged.register(self._jobs)
        return generate_latest(merged)


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
                names = [served.id, str(state.index)]
                up.add_metric(names, 1.0 if state.healthy and not state.open_until else 0.0)
                busy.add_metric(names, float(state.in_flight))
                queued.add_metric(names, float(state.backend.waiting))
        yield from (up, busy, queued)


class _JobCollector(Collector):
    """Jobs due and not started, per kind, as the watchdog last saw them (the queue is shared: every
    process that runs jobs reports the same figures)."""

    def __init__(self, watchdog: JobWatchdog) -> None:
        self._watchdog = watchdog

    def collect(self) -> Iterator[GaugeMetricFamily]:
        waiting = GaugeMetricFamily("socle_jobs_waiting", "Jobs due and not started.", labels=["kind"])
        stalled = GaugeMetricFamily("socle_jobs_stalled", "Jobs due for longer than SOCLE_JOB_STALL_S and "
                                    "not started.", labels=["kind"])
        oldest = GaugeMetricFamily("socle_jobs_oldest_wait_seconds", "How long the job due the longest has "
                                   "waited to start.", labels=["kind"])
        for kind, due, late, wait_s in self._watchdog.backlog():
            waiting.add_metric([kind], float(due))
            stalled.add_metric([kind], float(late))
            oldest.add_metric([kind], wait_s)
        yield from (waiting, stalled, oldest)
