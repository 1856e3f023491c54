"""The platform's services wired together once, for the HTTP app and the CLI alike."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from socle.db.session import create_engine, session_factory
from socle.identity.service import IdentityService
from socle.inference.registry import ModelRegistry
from socle.inference.service import InferenceService
from socle.settings import Settings


@dataclass
class Platform:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    identity: IdentityService
    inference: InferenceService | None = None

    @classmethod
    def open(cls, settings: Settings) -> "Platform":
        """Storage and identity only: what the CLI's administration commands need."""
        engine = create_engine(settings.resolved_database_url, pool_size=settings.db_pool_size)
        sessions = session_factory(engine)
        return cls(settings, engine, sessions, IdentityService(sessions, cache_ttl_s=settings.auth_cache_ttl_s))

    async def start_inference(self) -> None:
        """Build the model registry from the catalogue and load or connect every backend."""
        registry = ModelRegistry(self.settings.catalogue(), health_interval_s=self.settings.health_interval_s)
        await registry.start()
        self.inference = InferenceService(registry, max_tokens_limit=self.settings.max_tokens_limit)

    async def close(self) -> None:
        if self.inference is not None:
            await self.inference.registry.close()
        await self.engine.dispose()
