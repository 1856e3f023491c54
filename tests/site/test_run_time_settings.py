"""What an administrator changes at run time besides the texts — the quota presets' amounts, the retention periods
(within their legal bounds) and ProConnect (its client secret sealed, never shown nor audited) — through the whole
platform, on real SQLite and PostgreSQL; a default model added in the browser; and `socle secrets rotate`, which
seals every stored secret again with the first key after a rotation."""
from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from socle.audit.service import Action
from socle.audit.store import AuditFilter
from socle.db import migrate
from socle.db.models import CatalogueBackend, Conversation, Role, SiteSetting, User, utcnow
from socle.errors import InvalidRequest
from socle.identity.permissions import SYSTEM, Principal
from socle.inference.sealing import SecretBox
from socle.platform import Mode, Platform
from socle.quotas.service import PRESETS, presets_with
from socle.settings import Settings
from tests.support.servers import SOCLE

ADMIN = Principal(user_id=7, email="admin@ministere.gouv.fr", role="admin", permissions=frozenset({"*"}))
OLD_KEY, NEW_KEY = Fernet.generate_key().decode(), Fernet.generate_key().decode()
ISSUER = "https://auth.exemple.gouv.fr/api/v2"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = (f"sqlite+aiosqlite:///{tmp_path / 'socle.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_database"))
    migrate.upgrade(url)
    return url


def environment(url: str, data_dir: Path, keys: str = OLD_KEY, **values: object) -> Settings:
    return Settings(data_dir=data_dir, database_url=url, encryption_keys=keys, _env_file=None,  # type: ignore[call-arg]
                    **values)


@pytest.fixture
async def platform(database_url: str, tmp_path: Path) -> AsyncIterator[Platform]:
    opened = Platform.build(environment(database_url, tmp_path), Mode.ADMIN)
    yield opened
    await opened.close()


async def entries(p: Platform, action: Action) -> list[dict[str, object]]:
    return [entry.details for entry in await p.audit.events(SYSTEM, AuditFilter(action=action))]


async def test_the_quota_presets_amounts_are_the_administrators(platform: Platform) -> None:
    assert presets_with((await platform.site.current()).quota_presets) == PRESETS  # the code's, until changed
    await platform.site.update(ADMIN, {"quota_presets": {"agent": {"requests_per_minute": "60",
                                                                   "budget_tokens": "5 000 000"}}})
    presets = presets_with((await platform.site.current()).quota_presets)
    assert presets["agent"] == {**PRESETS["agent"], "requests_per_minute": 60, "budget_tokens": 5_000_000}
    assert presets["equipe"] == PRESETS["equipe"]  # scope and period stay the preset's
    assert await entries(platform, Action.QUOTA_PRESETS_CHANGED) == [
        {"changed": ["quota_presets"], "presets": (await platform.site.current()).quota_presets}]
    for wrong in ({"agent": {"requests_per_minute": "-1"}}, {"agent": {"scope": "global"}}, {"chef": {}},
                  {"agent": {"requests_per_day": "beaucoup"}}):
        with pytest.raises(InvalidRequest):
            await platform.site.update(ADMIN, {"quota_presets": wrong})
    assert len(await entries(platform, Action.QUOTA_PRESETS_CHANGED)) == 1


async def test_the_retention_periods_are_changed_within_their_bounds_and_applied(platform: Platform) -> None:
    async with platform.sessions() as session, session.begin():
        role = await session.scalar(select(Role).where(Role.name == "user"))
        user = User(email="agent@ministere.gouv.fr", name="Agent", role=role)
        session.add(user)
        await session.flush()
        when = utcnow() - timedelta(days=100)
        session.add(Conversation(user_id=user.id, title="ancienne", model="m", created_at=when, updated_at=when))
    await platform.retention.run("2026-01-01")  # 365 days by default: kept
    async with platform.sessions() as session:
        assert await session.scalar(select(Conversation.id)) is not None

    for name, days in (("retention_audit_days", "100"), ("retention_conversations_days", "4000"),
                       ("retention_sessions_days", "deux")):
        with pytest.raises(InvalidRequest, match="nombre entier|entre"):
            await platform.site.update(ADMIN, {name: days})
    await platform.site.update(ADMIN, {"retention_conversations_days": "60", "retention_audit_days": "730"})
    assert (await platform.retention.current()).of("conversations") == 60
    assert "60 jours après leur dernière" in (await platform.site.current()).privacy  # the page says it
    run = await platform.retention.run("2026-01-02")
    assert run.counts["conversations"] == 1
    assert await entries(platform, Action.RETENTION_CHANGED) == [
        {"changed": ["retention_audit_days", "retention_conversations_days"], "retention_audit_days": 730,
         "retention_conversations_days": 60}]
    assert (await platform.audit.verify()).ok


async def test_proconnect_is_configured_from_the_browser_its_secret_sealed(database_url: str, tmp_path: Path) -> None:
    p = Platform.build(environment(database_url, tmp_path, oidc_issuer=ISSUER, oidc_client_id="env-client",
                                   oidc_client_secret="le-secret-de-l-environnement"), Mode.ADMIN)
    try:
        site = await p.site.current()
        assert site.proconnect_enabled and site.proconnect_issuer == ISSUER  # the environment's, by default
        client = p.identity_provider.client(site.proconnect)
        assert client is not None and client.client_id == "env-client"

        with pytest.raises(InvalidRequest, match="https://"):
            await p.site.update(ADMIN, {"proconnect_issuer": "http://auth.exemple.gouv.fr"})
        await p.site.update(ADMIN, {"proconnect_client_id": "socle-ia", "proconnect_client_secret": "s3cr3t-du-site"})
        async with p.sessions() as session:
            stored = await session.scalar(select(SiteSetting.value).where(
                SiteSetting.name == "proconnect_client_secret"))
        assert isinstance(stored, str) and "s3cr3t" not in stored
        assert SecretBox(environment(database_url, tmp_path).encryption_keys).open(stored) == "s3cr3t-du-site"
        site = await p.site.current()
        client = p.identity_provider.client(site.proconnect)
        assert client is not None and client.client_id == "socle-ia" and client._secret == "s3cr3t-du-site"
        assert p.identity_provider.client(site.proconnect) is client  # kept while the choice stays
        await p.site.update(ADMIN, {"proconnect_client_secret": ""})  # the form sends it empty: kept
        assert (await p.site.current()).proconnect_client_secret == stored

        await p.site.update(ADMIN, {"proconnect_enabled": False})
        assert p.identity_provider.client((await p.site.current()).proconnect) is None
        details = await entries(p, Action.PROCONNECT_CHANGED)  # the latest first
        assert details[1] == {"changed": ["proconnect_client_id", "proconnect_client_secret"],
                              "proconnect_client_id": "socle-ia"}  # never the secret
        assert details[0] == {"changed": ["proconnect_enabled"], "proconnect_enabled": False}
    finally:
        await p.close()


async def test_proconnect_needs_its_three_settings_and_an_encryption_key(database_url: str, tmp_path: Path) -> None:
    p = Platform.build(environment(database_url, tmp_path, keys=""), Mode.ADMIN)
    try:
        assert (await p.site.current()).proconnect is None
        with pytest.raises(InvalidRequest, match="pour activer ProConnect"):
            await p.site.update(ADMIN, {"proconnect_enabled": True, "proconnect_issuer": ISSUER})
        with pytest.raises(InvalidRequest, match="SOCLE_ENCRYPTION_KEYS"):
            await p.site.update(ADMIN, {"proconnect_enabled": True, "proconnect_issuer": ISSUER,
                                        "proconnect_client_id": "socle-ia", "proconnect_client_secret": "s3cr3t"})
        assert (await p.site.current()).proconnect is None
    finally:
        await p.close()


async def test_the_default_model_may_be_one_added_in_the_browser(platform: Platform) -> None:
    await platform.models.create(ADMIN, {"id": "albert-navigateur", "type": "chat"},
                                 {"type": "openai", "url": "https://albert.exemple.gouv.fr/v1"})
    saved = await platform.site.update(ADMIN, {"default_model": "albert-navigateur"})
    assert saved.default_model == "albert-navigateur"
    with pytest.raises(InvalidRequest, match="n'est pas un modèle de conversation"):
        await platform.site.update(ADMIN, {"default_model": "inconnu"})


async def test_the_embeddings_model_may_be_one_added_in_the_browser(database_url: str, tmp_path: Path) -> None:
    """SOCLE_RAG_EMBEDDING_MODEL naming a model the catalogue's file lacks: one added in the browser, kept (not
    dropped for "by words only" as an unknown default is); the file's own model otherwise."""
    named = Platform.build(environment(database_url, tmp_path, rag_embedding_model="e5-navigateur"), Mode.ADMIN)
    unnamed = Platform.build(environment(database_url, tmp_path), Mode.ADMIN)
    try:
        assert named.search.embedding_model == "e5-navigateur"
        assert unnamed.search.embedding_model == "multilingual-e5-small"  # the file's
    finally:
        await named.close()
        await unnamed.close()


def rotate(url: str, data_dir: Path, keys: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SOCLE_DATABASE_URL": url, "SOCLE_DATA_DIR": str(data_dir), "SOCLE_ENCRYPTION_KEYS": keys}
    return subprocess.run([str(SOCLE), "secrets", "rotate"], env=env, capture_output=True, text=True, timeout=120)


async def test_secrets_rotate_seals_every_stored_secret_with_the_first_key(database_url: str, tmp_path: Path) -> None:
    p = Platform.build(environment(database_url, tmp_path), Mode.ADMIN)
    try:
        for name in ("albert-a", "albert-b"):
            await p.models.create(ADMIN, {"id": name, "type": "chat"},
                                  {"type": "openai", "url": f"https://{name}.exemple.gouv.fr/v1"},
                                  api_key=f"cle-{name}")
        await p.site.update(ADMIN, {"proconnect_enabled": True, "proconnect_issuer": ISSUER,
                                    "proconnect_client_id": "socle-ia", "proconnect_client_secret": "s3cr3t"})
    finally:
        await p.close()

    done = rotate(database_url, tmp_path, f"{NEW_KEY},{OLD_KEY}")
    assert done.returncode == 0, done.stderr
    assert "2 backend key(s), 1 ProConnect client secret(s)" in done.stdout
    again = rotate(database_url, tmp_path, f"{NEW_KEY},{OLD_KEY}")  # idempotent
    assert again.returncode == 0 and "2 backend key(s), 1 ProConnect" in again.stdout
    assert rotate(database_url, tmp_path, Fernet.generate_key().decode()).returncode == 1  # no key opens them

    p = Platform.build(environment(database_url, tmp_path, keys=NEW_KEY), Mode.ADMIN)  # the old key dropped
    try:
        snapshot = await p.models.snapshot()
        keys = {m.id: m.backends[0].api_key.get_secret_value() for m in snapshot.models if m.id.startswith("albert")}
        assert keys == {"albert-a": "cle-albert-a", "albert-b": "cle-albert-b"}
        client = p.identity_provider.client((await p.site.current()).proconnect)
        assert client is not None and client._secret == "s3cr3t"
        async with p.sessions() as session:
            assert len(list(await session.scalars(select(CatalogueBackend.secret).where(
                CatalogueBackend.secret.is_not(None))))) == 2
        assert [d["backend_keys"] for d in await entries(p, Action.SECRETS_RESEALED)] == [2, 2]
    finally:
        await p.close()
