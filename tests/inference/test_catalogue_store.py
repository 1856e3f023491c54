"""The catalogue in the database: the file imported at start and authoritative for its models, models added from
the browser with their keys encrypted, every change seen by every process (two registries here) without a restart;
on SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.audit.service import Action, AuditTrail
from socle.audit.store import AuditFilter
from socle.db import migrate
from socle.db.models import CatalogueBackend
from socle.db.session import create_engine, session_factory
from socle.endpoints import Endpoint
from socle.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from socle.identity.permissions import SYSTEM, Principal
from socle.inference.catalogue_store import CatalogueStore
from socle.inference.registry import ModelRegistry
from socle.inference.sealing import SealingUnavailable, SecretBox
from socle.settings import Catalogue
from tests.support.fake_backend import Answer, FakeBackend

ADMIN = Principal(user_id=7, email="admin@ministere.gouv.fr", role="admin", permissions=frozenset({"*"}))
WATCHER = Principal(user_id=8, email="veille@ministere.gouv.fr", role="veille", permissions=frozenset({"metrics:read"}))
KEY = SecretStr(Fernet.generate_key().decode())
FILE = Catalogue.model_validate({"models": [
    {"id": "albert-large", "type": "chat", "backends": [{"type": "openai", "url": "http://127.0.0.1:9/v1"}],
     "card": {"provider": "Etalab", "license": "Apache-2.0", "intended_use": "Rédaction"}},
    {"id": "bge-m3", "type": "embeddings", "backends": [{"type": "openai", "url": "http://127.0.0.1:9/v1"}]},
]})
Database = tuple[async_sessionmaker[AsyncSession], AuditTrail]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    url = (f"sqlite+aiosqlite:///{tmp_path / 'catalogue.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_database"))
    migrate.upgrade(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    yield sessions, AuditTrail(sessions)
    await engine.dispose()


def store(database: Database, key: SecretStr | None = KEY) -> CatalogueStore:
    sessions, audit = database
    return CatalogueStore(sessions, audit, SecretBox(key), test_timeout_s=5)


def remote(url: str, **more: object) -> dict[str, object]:
    return {"type": "openai", "url": url, **more}


async def test_the_file_is_imported_once_and_stays_authoritative(database: Database) -> None:
    models = store(database)
    assert await models.import_file(FILE) is True
    assert await models.import_file(FILE) is False  # a second process starting finds it done: no new revision
    revision = await models.revision()
    entries = await models.entries(ADMIN)
    assert [(e.name, e.origin, e.enabled) for e in entries] == [("albert-large", "yaml", True), ("bge-m3", "yaml", True)]
    with pytest.raises(Conflict):  # changed in the file, not here
        await models.update(ADMIN, entries[0].id, {"type": "chat"})
    await models.set_enabled(ADMIN, entries[1].id, False)  # but taken out of service here, and it stays so
    smaller = Catalogue.model_validate({"models": [FILE.models[0].model_dump(mode="json", exclude_defaults=True)
                                                   | {"aliases": ["albert"]}, FILE.models[1].model_dump(mode="json")]})
    assert await models.import_file(smaller) is True and await models.revision() > revision + 1
    assert [(e.name, e.enabled) for e in await models.entries(ADMIN)] == [("albert-large", True), ("bge-m3", False)]
    assert [m.id for m in (await models.snapshot()).models] == ["albert-large"]
    assert (await models.snapshot()).models[0].aliases == ["albert"]
    await models.import_file(Catalogue(models=[FILE.models[0]]))  # a model the file drops is gone
    assert [e.name for e in await models.entries(ADMIN)] == ["albert-large"]


async def test_a_model_of_the_browser_keeps_its_key_encrypted(database: Database) -> None:
    models = store(database)
    await models.import_file(FILE)
    entry = await models.create(ADMIN, {"id": "mistral-small", "type": "chat",
                                        "card": {"description": "Un modèle de Mistral AI, bon en français.",
                                                 "provider": "Mistral AI", "license": "Apache-2.0",
                                                 "intended_use": "Conversation", "languages": ["fr", "en"],
                                                 "runs_on": "Serveurs du ministère"}},
                                remote("http://gpu1:8000/v1", model="mistral"), api_key="sk-tres-secret")
    assert entry.origin == "ui" and entry.backends[0].has_key and entry.config.card.languages == ["fr", "en"]
    sessions, audit = database
    async with sessions() as session:
        stored = (await session.scalars(select(CatalogueBackend).where(CatalogueBackend.model_id == entry.id))).one()
    assert "sk-tres-secret" not in str(stored.config) + (stored.secret or "")  # only its ciphertext is kept
    served = {m.id: m for m in (await models.snapshot()).models}
    assert served["mistral-small"].backends[0].api_key.get_secret_value() == "sk-tres-secret"
    exported = await models.export_yaml(ADMIN)
    assert "sk-tres-secret" not in exported and "SOCLE_BACKEND_KEY_MISTRAL_SMALL_0" in exported
    assert [m["id"] for m in yaml.safe_load(exported)["models"]] == ["albert-large", "bge-m3", "mistral-small"]

    with pytest.raises(SealingUnavailable):  # the key of the environment is gone: start-up fails, and says why
        await store(database, key=None).snapshot()
    with pytest.raises(InvalidRequest):  # nor can a key be entered without one
        await store(database, key=None).create(ADMIN, {"id": "autre", "type": "chat"}, remote("http://gpu2/v1"),
                                               api_key="sk-2")
    with pytest.raises(Conflict):
        await models.create(ADMIN, {"id": "mistral-small", "type": "chat"}, remote("http://gpu2/v1"))
    with pytest.raises(InvalidRequest, match="Adresse du serveur"):
        await models.create(ADMIN, {"id": "autre", "type": "chat"}, remote("ftp://gpu2"))
    with pytest.raises(PermissionDenied):
        await models.entries(WATCHER)

    await models.add_backend(ADMIN, entry.id, remote("http://gpu2:8000/v1", name="gpu2"))
    changed = await models.update(ADMIN, entry.id, {"type": "chat", "routing": "round-robin"})
    assert [b.label for b in changed.backends] == ["mistral-small#0", "gpu2"] and changed.config.routing == "round-robin"
    assert changed.backends[0].has_key  # editing the model keeps its backends' keys
    changed = await models.remove_backend(ADMIN, entry.id, changed.backends[0].id)
    assert [b.label for b in changed.backends] == ["gpu2"]
    with pytest.raises(InvalidRequest):  # a model keeps one backend at least
        await models.remove_backend(ADMIN, entry.id, changed.backends[0].id)
    down = await models.create(ADMIN, {"id": "eteint", "type": "embeddings"}, remote("http://127.0.0.1:9/v1"))
    [probe] = await models.test(ADMIN, down.id)  # "Tester la connexion" says why, in French
    assert not probe.ok and "injoignable" in probe.reason
    await models.delete(ADMIN, entry.id)
    with pytest.raises(NotFound):
        await models.entry(ADMIN, entry.id)
    actions = [e.action for e in await audit.events(SYSTEM, AuditFilter())]
    assert {Action.MODEL_CREATED, Action.MODEL_CHANGED, Action.MODEL_DELETED, Action.MODEL_TESTED} <= set(actions)
    assert (await audit.verify()).ok


async def test_every_process_applies_a_change_without_a_restart(database: Database) -> None:
    """Two registries over one database, as two workers: a model added, changed, tested, taken out of service."""
    async with FakeBackend() as fake:
        fake.default = Answer("Bonjour, je suis prêt.")
        here, there = store(database), store(database)
        first = ModelRegistry(FILE, store=here, refresh_s=0.05)  # polls the revision
        second = ModelRegistry(FILE, store=there, refresh_s=3600)  # its poll is done by hand below
        await first.start()
        await second.start()
        try:
            unchanged = second.get("albert-large")
            entry = await here.create(ADMIN, {"id": "ministral", "type": "chat"}, remote(fake.url), api_key="sk-1")
            for _ in range(200):  # the poll finds the new revision
                if "ministral" in first.configs:
                    break
                await asyncio.sleep(0.05)
            assert first.get("ministral").id == "ministral"
            assert await second.refresh() is True and await second.refresh() is False
            served = second.get("ministral")
            assert second.get("albert-large") is unchanged  # untouched models keep their pool and circuits
            answer = await served.pool.states[0].backend.call(Endpoint.CHAT, {"messages": [
                {"role": "user", "content": "Bonjour"}]})
            assert answer["choices"][0]["message"]["content"] == "Bonjour, je suis prêt."
            headers = {name.lower(): value for name, value in fake.received[-1].headers.items()}
            assert headers["authorization"] == "Bearer sk-1"
            assert second.configs["ministral"].type == "chat"  # the usage recorder's prices and sizes follow

            assert first.running(first.configs["ministral"], 0) is first.get("ministral").pool.states[0].backend
            assert first.running(entry.config, 0) is None  # the entry without its key is not what is served
            probes = await here.test(ADMIN, entry.id, first.running)  # through the backend this process runs
            assert [(p.ok, p.answer) for p in probes] == [(True, "Bonjour, je suis prêt.")]
            assert probes[0].latency_ms >= 0

            await here.set_enabled(ADMIN, entry.id, False)
            assert await second.refresh() is True
            with pytest.raises(NotFound):
                second.get("ministral")
            assert second.get("albert-large") is unchanged
        finally:
            await first.close()
            await second.close()

