"""The first admin's key given by the deployment (SOCLE_ADMIN_API_KEY): only a key of the platform's form and
strength is accepted, only its hash is stored, and no key file is written."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from socle.db import migrate
from socle.db.models import ApiKey
from socle.identity import keys
from socle.platform import Mode, Platform
from socle.settings import ConfigError, Settings, get_settings


@pytest.fixture(params=["sqlite", "postgres"])
async def platform(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Platform]:
    url = (f"sqlite+aiosqlite:///{tmp_path / 'socle.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_database"))
    migrate.upgrade(url)
    opened = Platform.build(Settings(data_dir=tmp_path, database_url=url, _env_file=None),  # type: ignore[call-arg]
                            Mode.ADMIN)
    yield opened
    await opened.close()


@pytest.mark.parametrize("given", [
    "0123456789abcdef0123456789abcdef0123456789",  # long, but not one of ours
    "sk-socle-0123456789ab_" + "s" * 31,  # one character short of the strength asked
    "sk-socle-0123456789AB_" + "s" * 40,  # public id not in lower-case hexadecimal
    "sk-socle-0123456789ab_" + "s" * 39 + "!",  # not url-safe
])
def test_a_key_not_of_the_platforms_form_is_refused_without_being_echoed(monkeypatch: pytest.MonkeyPatch,
                                                                        given: str) -> None:
    monkeypatch.setenv("SOCLE_ADMIN_API_KEY", given)
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError) as refused:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert "SOCLE_ADMIN_API_KEY" in str(refused.value) and given not in str(refused.value)


def test_a_generated_key_is_accepted_and_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    given = keys.new_key()[0]
    monkeypatch.setenv("SOCLE_ADMIN_API_KEY", given)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.admin_api_key is not None and settings.admin_api_key.get_secret_value() == given
    assert given not in repr(settings) and given not in str(settings.model_dump())
    monkeypatch.setenv("SOCLE_ADMIN_API_KEY", "")
    assert Settings(_env_file=None).admin_api_key is None  # type: ignore[call-arg]


async def test_the_first_admin_gets_the_given_key_and_only_its_hash_is_stored(platform: Platform,
                                                                             tmp_path: Path) -> None:
    given = keys.new_key()[0]
    key_file = tmp_path / "admin.key"
    assert await platform.identity.bootstrap_admin("admin@ministere.gouv.fr", key_file, key=given) == given
    assert not key_file.exists()
    principal = await platform.identity.authenticate(given)
    assert principal.role == "admin"
    async with platform.sessions() as session:
        stored = (await session.scalars(select(ApiKey))).unique().one()
    secret = given.split("_", 1)[1]
    assert stored.secret_hash == keys.hash_secret(secret) and secret not in stored.secret_hash
    assert await platform.identity.bootstrap_admin("other@ministere.gouv.fr", key_file,
                                                   key=keys.new_key()[0]) is None  # once only
