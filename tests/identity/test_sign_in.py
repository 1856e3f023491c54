"""The pieces of signing in, on their real storage: the failed sign-in counters (the `limits` memory storage the
embedded platform uses), sessions' idle time (a real SQLite database), the ProConnect settings, the pages'
numbering."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from limits.aio.storage import MemoryStorage
from pydantic import ValidationError
from sqlalchemy import select, update

from socle.db import migrate
from socle.db.models import LoginSession, Role, User, utcnow
from socle.db.session import create_engine, session_factory
from socle.errors import RateLimited
from socle.identity.sessions import SessionStore, session_id
from socle.identity.throttle import SignInThrottle
from socle.settings import Settings
from socle.ui.paging import Paging


def _throttle() -> SignInThrottle:
    return SignInThrottle(MemoryStorage(), per_account=3, per_address=5, window_minutes=15)


async def test_failures_hold_the_account_then_the_address() -> None:
    throttle = _throttle()
    for _ in range(3):
        await throttle.attempt("Agent@Ministere.gouv.fr ", "10.0.0.1")  # failed: the places stay taken
    with pytest.raises(RateLimited) as refused:
        await throttle.attempt("agent@ministere.gouv.fr", "10.0.0.2")  # the same account, written otherwise
    assert refused.value.code == "sign_in_throttled_account" and 890 < refused.value.retry_after_s <= 900
    for n in range(2):  # the address has 3 failures: 2 more on other accounts fill it
        await throttle.attempt(f"autre-{n}@ministere.gouv.fr", "10.0.0.1")
    with pytest.raises(RateLimited) as refused:
        await throttle.attempt("encore-un@ministere.gouv.fr", "10.0.0.1")
    assert refused.value.code == "sign_in_throttled_address"
    await throttle.attempt("encore-un@ministere.gouv.fr", "10.0.0.3")  # a refusal took no place


async def test_a_success_is_not_counted_and_clears_its_account() -> None:
    throttle = _throttle()
    for _ in range(2):
        await throttle.attempt("agent@ministere.gouv.fr", "10.0.0.1")
    await throttle.succeeded(await throttle.attempt("agent@ministere.gouv.fr", "10.0.0.1"))
    for _ in range(3):  # the account starts afresh; the address still holds its 2 failures
        await throttle.attempt("agent@ministere.gouv.fr", "10.0.0.1")
    with pytest.raises(RateLimited):
        await throttle.attempt("x@ministere.gouv.fr", "10.0.0.1")


async def test_guesses_sent_at_once_do_not_slip_under_the_limit() -> None:
    throttle = _throttle()
    results = await asyncio.gather(*(throttle.attempt("agent@ministere.gouv.fr", f"10.0.1.{n}") for n in range(20)),
                                   return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 3
    assert all(isinstance(r, RateLimited) for r in results if isinstance(r, Exception))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[tuple[SessionStore, int]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'socle.db'}"
    migrate.upgrade(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        role = await session.scalar(select(Role).where(Role.name == "user"))
        user = User(email="agent@ministere.gouv.fr", name="", role=role, groups=[])
        session.add(user)
    yield SessionStore(sessions, lifetime=timedelta(hours=12), idle=timedelta(minutes=30)), user.id
    await engine.dispose()


async def _last_seen(store: SessionStore, token: str, *, ago: timedelta | None = None) -> object:
    async with store._sessions() as session, session.begin():
        if ago is not None:
            await session.execute(update(LoginSession).where(LoginSession.id == session_id(token))
                                  .values(last_seen_at=utcnow() - ago))
        return await session.scalar(select(LoginSession.last_seen_at).where(LoginSession.id == session_id(token)))


async def test_a_session_in_use_lasts_and_an_idle_one_ends(store: tuple[SessionStore, int]) -> None:
    sessions, user_id = store
    opened = await sessions.open(user_id, id_token="the provider's")
    assert (await sessions.resolve(opened.token)) is not None
    before = await _last_seen(sessions, opened.token, ago=timedelta(minutes=29))
    assert (await sessions.resolve(opened.token)) is not None  # used within the idle time...
    assert await _last_seen(sessions, opened.token) > before  # ...which starts again
    await _last_seen(sessions, opened.token, ago=timedelta(minutes=30, seconds=1))
    assert (await sessions.resolve(opened.token)) is None
    assert await _last_seen(sessions, opened.token) is None  # deleted, not only refused


async def test_closing_a_session_hands_back_the_providers_token(store: tuple[SessionStore, int]) -> None:
    sessions, user_id = store
    opened = await sessions.open(user_id, id_token="eyJ.the.token")
    assert await sessions.close(opened.token) == "eyJ.the.token"
    assert await sessions.resolve(opened.token) is None
    assert await sessions.close((await sessions.open(user_id)).token) is None


def test_proconnect_settings_are_complete_or_refused() -> None:
    with pytest.raises(ValidationError, match="SOCLE_OIDC_CLIENT_SECRET too"):
        Settings(_env_file=None, oidc_issuer="https://auth.agentconnect.gouv.fr/api/v2", oidc_client_id="socle")
    with pytest.raises(ValidationError, match="https"):
        Settings(_env_file=None, oidc_issuer="http://idp.example", oidc_client_id="a", oidc_client_secret="b")
    settings = Settings(_env_file=None, oidc_issuer="https://auth.agentconnect.gouv.fr/api/v2",
                        oidc_client_id="socle", oidc_client_secret="s3cret")
    assert settings.oidc_client_secret is not None and "s3cret" not in repr(settings)
    assert Settings(_env_file=None, oidc_issuer="").oidc_issuer is None  # empty: not configured


def test_pages_link_the_ends_and_around_the_current_one() -> None:
    paging = Paging.of("7", total=1000, per_page=50, path="/ui/admin/utilisateurs")
    assert (paging.pages, paging.offset) == (20, 300)
    assert paging.numbers() == [1, None, 5, 6, 7, 8, 9, None, 20]
    assert paging.url(1) == "/ui/admin/utilisateurs" and paging.url(3) == "/ui/admin/utilisateurs?page=3"
    assert Paging.of("999", total=120, per_page=50, path="/x").page == 3  # past the end: the last page
    assert Paging.of("abc", total=0, per_page=50, path="/x").numbers() == [1]
