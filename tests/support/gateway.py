"""The platform's inference path built in-process from its real classes, as ``socle.platform`` wires it: model
registry, inference service, usage recorder and quota limiter over a migrated database, with backends
that are ``FakeBackend`` servers. Routing, failover, quotas and usage accounting run as in production;
only the HTTP front and the process are left out, which the end-to-end tests cover."""
from __future__ import annotations

import secrets
import shutil
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.audit.service import AuditTrail
from socle.db import migrate
from socle.db.models import UsageRecord
from socle.db.session import create_engine, session_factory
from socle.endpoints import Endpoint, Json
from socle.identity.permissions import SYSTEM, Permission, Principal
from socle.inference.registry import ModelRegistry
from socle.inference.service import InferenceService
from socle.quotas.limiter import QuotaLimiter
from socle.quotas.service import QuotaService
from socle.settings import Catalogue
from socle.usage.impact import ImpactEstimator
from socle.usage.recorder import UsageRecorder

REDIS_URL = "redis://127.0.0.1:6379/0"
MESSAGES = [{"role": "user", "content": "Quelle est la capitale de la France ?"}]


def caller(user_id: int = 42, *, role: str = "user", key_id: int | None = 7,
           group_ids: Iterable[int] = ()) -> Principal:
    """Someone allowed to call models, as the identity service resolves an API key."""
    return Principal(user_id=user_id, email=f"agent{user_id}@ministere.gouv.fr", role=role,
                     permissions=frozenset({Permission.MODELS_READ, Permission.MODELS_USE}),
                     group_ids=frozenset(group_ids), key_id=key_id)


def chat_model(model_id: str, *urls: str, **options: Any) -> dict[str, Any]:
    """A catalogue entry for a chat model served by OpenAI-compatible backends at ``urls``; ``options`` are
    the model's other fields (routing, failure_threshold, pricing...). A backend's own fields are given by
    passing a dict instead of a URL."""
    backends = [{"type": "openai", "url": url, "timeout_s": 5} if isinstance(url, str) else {"type": "openai", **url}
                for url in urls]
    return {"id": model_id, "type": "chat", "backends": backends, **options}


@dataclass
class Gateway:
    """The services of one platform process."""

    inference: InferenceService
    registry: ModelRegistry
    recorder: UsageRecorder
    quotas: QuotaService
    limiter: QuotaLimiter
    sessions: async_sessionmaker[AsyncSession]
    key_prefix: str  # of the quota counters in Redis, for another process sharing them

    async def chat(self, principal: Principal, model: str, **body: Any) -> Json:
        return await self.inference.call(principal, Endpoint.CHAT, {"model": model, "messages": MESSAGES, **body})

    async def stream_chat(self, principal: Principal, model: str, **body: Any) -> list[Json]:
        """Every chunk of a streamed chat answer (errors after the first chunk are raised by the iteration)."""
        stream = await self.inference.stream(principal, Endpoint.CHAT,
                                             {"model": model, "messages": MESSAGES, "stream": True, **body})
        return [chunk async for chunk in stream]

    async def add_quota(self, **fields: Any) -> int:
        """A quota rule, created as an administrator does (the limiter reads it at the next call)."""
        return (await self.quotas.create(SYSTEM, **fields)).id

    async def usage(self) -> list[UsageRecord]:
        """The usage rows written so far, oldest first (what waits in the recorder is written first)."""
        await self.recorder.flush()
        async with self.sessions() as session:
            return list(await session.scalars(select(UsageRecord).order_by(UsageRecord.id)))


_TEMPLATE: Path | None = None


def _migrated_database(directory: Path) -> str:
    """A fresh SQLite database at the schema's head: a copy of one migrated once per run."""
    global _TEMPLATE
    if _TEMPLATE is None or not _TEMPLATE.exists():
        template = directory.parent / f"template-{secrets.token_hex(4)}.db"
        migrate.upgrade(f"sqlite+aiosqlite:///{template}")
        _TEMPLATE = template
    path = directory / "socle.db"
    shutil.copyfile(_TEMPLATE, path)
    return f"sqlite+aiosqlite:///{path}"


@asynccontextmanager
async def gateway(directory: Path, models: list[dict[str, Any]], *,
                  redis_url: str | None = None) -> AsyncIterator[Gateway]:
    """The inference path over a SQLite database in ``directory``; quota counters in this process's memory,
    or in Redis under a prefix of their own, cleared at the end."""
    engine = create_engine(_migrated_database(directory))
    sessions = session_factory(engine)
    catalogue = Catalogue.model_validate({"models": models})
    quotas = QuotaService(sessions, AuditTrail(sessions), refresh_s=0)  # a rule applies from the next call
    recorder = UsageRecorder(sessions, {model.id: model for model in catalogue.models},
                             ImpactEstimator("FRA", pue=1.2, wue=0.5), interval_s=3600)  # written by usage()
    registry = ModelRegistry(catalogue, health_interval_s=3600)  # health checked when a test asks
    prefix = f"socle-test-{secrets.token_hex(4)}"
    limiter = QuotaLimiter(quotas, redis_url=redis_url, key_prefix=prefix)
    await registry.start()
    try:
        yield Gateway(InferenceService(registry, max_tokens_limit=1024, usage=recorder, quotas=limiter),
                      registry, recorder, quotas, limiter, sessions, prefix)
    finally:
        await registry.close()
        await recorder.close()
        if redis_url:
            await limiter.store.reset()
        await limiter.close()
        await engine.dispose()
