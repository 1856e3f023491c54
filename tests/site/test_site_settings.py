"""The site's settings: the environment's values until an administrator saves others, every change audited and
seen by every process within the refresh delay; on SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.audit.service import Action, AuditTrail
from socle.audit.store import AuditFilter
from socle.db import migrate
from socle.db.models import Role, SiteSetting
from socle.db.session import create_engine, session_factory
from socle.errors import InvalidRequest, PermissionDenied
from socle.identity.permissions import SYSTEM, Principal
from socle.inference.sealing import SecretBox
from socle.settings import Settings
from socle.site import defaults
from socle.site.service import SiteService

Database = tuple[async_sessionmaker[AsyncSession], AuditTrail]
ADMIN = Principal(user_id=7, email="admin@ministere.gouv.fr", role="admin", permissions=frozenset({"*"}))
MANAGER = Principal(user_id=8, email="chef@ministere.gouv.fr", role="chef",
                    permissions=frozenset({"users:admin", "quotas:admin", "roles:admin", "audit:read"}))


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    url = (f"sqlite+aiosqlite:///{tmp_path / 'site.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_database"))
    migrate.upgrade(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    yield sessions, AuditTrail(sessions)
    await engine.dispose()


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def service(database: Database, environment: Settings | None = None, *, refresh_s: float = 5.0) -> SiteService:
    sessions, audit = database
    return SiteService(sessions, audit, environment or settings(), box=SecretBox(None), refresh_s=refresh_s,
                       chat_models=["albert-large", "smollm2-135m"])


async def test_the_environment_gives_the_defaults(database: Database) -> None:
    environment = settings(site_welcome_text="Bienvenue au ministère.", site_suggestions=["Résume ce texte :"],
                           site_organisation="Ministère de l'Exemple", site_accessibility="partial",
                           retention_conversations_days=90)
    current = await service(database, environment).current()
    assert current.welcome_text == "Bienvenue au ministère."
    assert current.suggestions == ("Résume ce texte :",)
    assert current.accessibility == "partial" and current.default_model == ""
    assert "Ministère de l'Exemple" in current.legal_notice
    assert "90 jours" in current.privacy  # the texts say what the platform really keeps, and how long
    plain = await service(database).current()
    assert plain.welcome_text == defaults.WELCOME and plain.suggestions == defaults.SUGGESTIONS


async def test_a_change_is_audited_and_reaches_every_process(database: Database) -> None:
    here, elsewhere = service(database), service(database, refresh_s=0.2)  # two workers
    assert (await elsewhere.current()).default_model == ""
    saved = await here.update(ADMIN, {"default_model": "albert-large", "suggestions": "Traduis :\n\n  Résume :  \n",
                                      "accessibility": "partial", "welcome_text": defaults.WELCOME})
    assert saved.default_model == "albert-large" and saved.suggestions == ("Traduis :", "Résume :")
    assert (await elsewhere.current()).default_model == ""  # its copy, until the refresh delay is over
    await asyncio.sleep(0.3)
    assert (await elsewhere.current()).suggestions == ("Traduis :", "Résume :")

    sessions, audit = database
    entries = await audit.events(SYSTEM, AuditFilter(action=Action.SITE_SETTINGS_CHANGED))
    assert len(entries) == 1 and entries[0].actor_user_id == ADMIN.user_id
    assert entries[0].details == {"changed": ["accessibility", "default_model", "suggestions"]}  # names, no texts
    assert (await audit.verify()).ok

    assert await here.update(ADMIN, {"default_model": "albert-large"}) == saved  # nothing changed: nothing recorded
    as_a_browser_sends_it = here.defaults.privacy.replace("\n", "\r\n") + "\r\n"  # a textarea, unchanged
    assert await here.update(ADMIN, {"privacy": as_a_browser_sends_it}) == saved
    assert len(await audit.events(SYSTEM, AuditFilter(action=Action.SITE_SETTINGS_CHANGED))) == 1


async def test_a_value_back_to_its_default_follows_the_environment_again(database: Database) -> None:
    await service(database).update(ADMIN, {"organisation": "Direction A", "contact": "dpo@exemple.gouv.fr"})
    await service(database).update(ADMIN, {"organisation": ""})  # the environment's value again
    sessions, _ = database
    async with sessions() as session:
        assert set(await session.scalars(select(SiteSetting.name))) == {"contact"}
    later = await service(database, settings(site_organisation="Direction B")).current()
    assert later.organisation == "Direction B" and later.contact == "dpo@exemple.gouv.fr"


@pytest.mark.parametrize(("changes", "words"), [
    ({"default_model": "gpt-4"}, "n'est pas un modèle de conversation"),
    ({"accessibility": "conforme"}, "niveau de conformité"),
    ({"suggestions": "\n".join(f"Suggestion {n}" for n in range(7))}, "6 suggestions au plus"),
    ({"suggestions": "x" * 201}, "au plus 200 caractères"),
    ({"welcome_text": "x" * 2001}, "« Texte d'accueil » compte au plus 2000 caractères"),
    ({"color": "bleu"}, "n'existe pas"),
])
async def test_a_wrong_value_is_refused_and_nothing_is_saved(database: Database, changes: dict[str, str],
                                                             words: str) -> None:
    site = service(database)
    with pytest.raises(InvalidRequest, match=words):
        await site.update(ADMIN, {"organisation": "Direction A", **changes})
    assert (await site.current()).organisation == ""


async def test_only_an_administrator_changes_them(database: Database) -> None:
    with pytest.raises(PermissionDenied):
        await service(database).update(MANAGER, {"welcome_text": "Bonjour"})


async def test_the_built_in_roles_are_described_in_french(database: Database) -> None:
    sessions, _ = database
    async with sessions() as session:
        described = {role.name: role.description for role in await session.scalars(select(Role))}
    assert described["admin"] == "Administre la plateforme : toutes les permissions."
    assert described["user"].startswith("Utilise l'assistant") and described["auditor"].startswith("Consulte")
