"""The platform's services wired together once, for the HTTP app and the CLI alike."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from socle.db.session import create_engine, session_factory
from socle.identity.service import IdentityService
from socle.inference.registry import ModelRegistry
from socle.inference.service import InferenceService
from socle.quotas.limiter import QuotaLimiter
from socle.quotas.service import QuotaService
from socle.rag.collections import CollectionService
from socle.settings import Settings
from socle.usage.events import Sinks
from socle.usage.impact import ImpactEstimator
from socle.usage.metrics import Metrics
from socle.usage.recorder import UsageRecorder
from socle.usage.service import UsageService


@dataclass
class Platform:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    identity: IdentityService
    usage: UsageService
    quotas: QuotaService
    collections: CollectionService
    inference: InferenceService | None = None
    recorder: UsageRecorder | None = None
    metrics: Metrics | None = None

    @classmethod
    def open(cls, settings: Settings) -> "Platform":
        """Storage, identity, usage reports and quota rules: what the CLI's administration commands need."""
        engine = create_engine(settings.resolved_database_url, pool_size=settings.db_pool_size)
        sessions = session_factory(engine)
        return cls(settings, engine, sessions, IdentityService(sessions, cache_ttl_s=settings.auth_cache_ttl_s),
                   UsageService(sessions, currency=settings.currency),
                   QuotaService(sessions, refresh_s=settings.quota_refresh_s), CollectionService(sessions))

    async def start_inference(self) -> None:
        """Build the model registry from the catalogue, load or connect every backend, record usage."""
        settings = self.settings
        catalogue = settings.catalogue()
        impacts = ImpactEstimator(settings.electricity_mix, pue=settings.datacenter_pue, wue=settings.datacenter_wue)
        self.recorder = UsageRecorder(self.sessions, {m.id: m for m in catalogue.models}, impacts,
                                      interval_s=settings.usage_flush_interval_s, batch_size=settings.usage_batch_size)
        registry = ModelRegistry(catalogue, health_interval_s=settings.health_interval_s)
        await registry.start()
        self.recorder.start()
        limiter = QuotaLimiter(self.quotas, redis_url=settings.redis_url, key_prefix=settings.redis_key_prefix,
                               fail_open=settings.quota_fail_open)
        self.metrics = Metrics(registry)
        self.inference = InferenceService(registry, max_tokens_limit=settings.max_tokens_limit,
                                          usage=Sinks(self.recorder, self.metrics),
                                          quotas=limiter,
                                          default_completion_tokens=settings.quota_default_completion_tokens)

    async def close(self) -> None:
        if self.inference is not None:
            await self.inference.registry.close()
        if self.recorder is not None:
            await self.recorder.close()  # writes what is still waiting
        await self.engine.dispose()
