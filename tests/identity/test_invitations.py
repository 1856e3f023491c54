"""Invitations, password links, a forgotten password, changing one's password and importing accounts: the
services on a real database (SQLite, then PostgreSQL), with a real SMTP server (aiosmtpd) receiving the e-mails."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from limits.aio.storage import MemoryStorage
from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.audit.service import Action, AuditTrail
from socle.db import migrate
from socle.db.models import AccountLink, AuditEvent, LoginSession, User, utcnow
from socle.db.session import create_engine, session_factory
from socle.errors import BackendUnavailable, Conflict, InvalidRequest, NotFound, RateLimited, Unauthenticated
from socle.identity.invitations import AccountLinks, Purpose
from socle.identity.permissions import SYSTEM
from socle.identity.service import IdentityService
from socle.identity.sessions import SessionStore
from socle.identity.throttle import SignInThrottle
from socle.mail import Mail, SmtpMailer
from socle.settings import Settings
from tests.support.mailbox import Inbox, smtp_server
from tests.support.servers import free_port

PUBLIC_URL = "https://ia.ministere.gouv.fr"
PASSWORD = "un mot de passe bien long"


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with smtp_server() as inbox:
        yield inbox


@dataclass
class World:
    sessions: async_sessionmaker[AsyncSession]
    identity: IdentityService
    links: AccountLinks
    web: SessionStore


@pytest.fixture(params=["sqlite", "postgres"])
async def world(request: pytest.FixtureRequest, tmp_path: Path, inbox: Inbox) -> AsyncIterator[World]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'socle.db'}" if request.param == "sqlite" else \
        request.getfixturevalue("postgres_database")
    await asyncio.to_thread(migrate.upgrade, url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    audit = AuditTrail(sessions)
    identity = IdentityService(sessions, audit, cache_ttl_s=0)
    mailer = SmtpMailer(host="127.0.0.1", port=inbox.port, sender="Socle IA <ne-pas-repondre@ministere.gouv.fr>",
                        tls="none")
    links = AccountLinks(sessions, audit, identity, mailer=mailer, public_url=PUBLIC_URL,
                         throttle=SignInThrottle(MemoryStorage(), per_account=3, per_address=10, window_minutes=15,
                                                 namespace="password-reset"),
                         invitation_ttl=timedelta(hours=72), reset_ttl=timedelta(minutes=60))
    yield World(sessions, identity, links, SessionStore(sessions, lifetime=timedelta(hours=1),
                                                        idle=timedelta(minutes=30)))
    await links.drain()
    await engine.dispose()


async def _actions(world: World, user_id: int) -> list[str]:
    async with world.sessions() as session:
        return list(await session.scalars(select(AuditEvent.action).where(AuditEvent.target_id == str(user_id))
                                          .order_by(AuditEvent.id)))


async def test_an_invited_person_sets_their_password_once(world: World, inbox: Inbox) -> None:
    issued = await world.links.invite(SYSTEM, email="Nouvel.Agent@Ministere.gouv.fr", name="Nouvel Agent",
                                      role="user")
    assert issued.mailed and issued.purpose is Purpose.INVITATION and issued.email == "nouvel.agent@ministere.gouv.fr"
    mail = inbox.messages[-1]
    assert mail["To"] == issued.email and mail["Subject"] == "Votre compte Socle IA"
    assert inbox.link(PUBLIC_URL) == issued.token  # the e-mail carries the link the admin sees
    async with world.sessions() as session:  # only the hash is stored
        stored = list(await session.scalars(select(AccountLink.token_hash)))
    assert stored and issued.token not in stored[0]

    view = await world.links.open(issued.token)
    assert (view.email, view.purpose) == (issued.email, Purpose.INVITATION)
    await world.links.open(issued.token)  # opening spends nothing (mail filters open links)
    with pytest.raises(InvalidRequest, match="at least 12"):
        await world.links.redeem(issued.token, "court")
    principal = await world.links.redeem(issued.token, PASSWORD)  # the refused password left the link working
    assert principal.user_id == issued.user_id
    assert (await world.identity.verify_password(issued.email, PASSWORD)).user_id == issued.user_id
    for use in (world.links.open(issued.token), world.links.redeem(issued.token, "un autre mot de passe long")):
        with pytest.raises(NotFound) as refused:
            await use
        assert refused.value.code == "invalid_link"
    assert await _actions(world, issued.user_id) == [Action.USER_CREATED, Action.ACCOUNT_LINK_CREATED,
                                                     Action.PASSWORD_SET, Action.SIGN_IN, Action.SIGN_IN]


async def test_links_expire_and_a_new_one_voids_the_previous(world: World) -> None:
    first = await world.links.invite(SYSTEM, email="agent@ministere.gouv.fr")
    second = await world.links.reset(SYSTEM, first.user_id)
    assert second.purpose is Purpose.INVITATION  # no password yet: still an invitation
    with pytest.raises(NotFound):
        await world.links.open(first.token)
    async with world.sessions() as session, session.begin():
        await session.execute(update(AccountLink).values(expires_at=utcnow() - timedelta(seconds=1)))
    with pytest.raises(NotFound):
        await world.links.redeem(second.token, PASSWORD)
    with pytest.raises(NotFound):
        await world.links.open("not-a-token")
    with pytest.raises(Conflict):  # inviting an address that has an account: refused, nothing written
        await world.links.invite(SYSTEM, email="AGENT@ministere.gouv.fr")


async def test_a_reset_ends_every_session_and_two_racing_uses_make_one(world: World) -> None:
    issued = await world.links.invite(SYSTEM, email="agent@ministere.gouv.fr")
    await world.links.redeem(issued.token, PASSWORD)
    opened = await world.web.open(issued.user_id)
    reset = await world.links.reset(SYSTEM, issued.user_id)
    assert reset.purpose is Purpose.RESET
    assert await world.web.resolve(opened.token) is not None  # until the new password is set
    results = await asyncio.gather(*(world.links.redeem(reset.token, f"nouveau mot de passe {n}") for n in range(4)),
                                   return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, NotFound) for r in results if isinstance(r, Exception))
    assert await world.web.resolve(opened.token) is None


async def test_a_disabled_account_cannot_use_its_link(world: World) -> None:
    issued = await world.links.invite(SYSTEM, email="agent@ministere.gouv.fr")
    await world.identity.update_user(SYSTEM, issued.user_id, is_active=False)
    with pytest.raises(Unauthenticated):
        await world.links.redeem(issued.token, PASSWORD)


async def test_a_forgotten_password_says_nothing_about_the_address(world: World, inbox: Inbox) -> None:
    issued = await world.links.invite(SYSTEM, email="agent@ministere.gouv.fr")
    await world.links.redeem(issued.token, PASSWORD)
    before = len(inbox.messages)
    assert await world.links.forgotten("inconnu@ministere.gouv.fr", "10.0.0.1") is None
    assert await world.links.forgotten("Agent@ministere.gouv.fr", "10.0.0.1") is None
    await world.links.drain()
    assert len(inbox.messages) == before + 1 and inbox.messages[-1]["To"] == "agent@ministere.gouv.fr"
    await world.links.redeem(inbox.link(PUBLIC_URL), "mon nouveau mot de passe")
    assert (await world.identity.verify_password("agent@ministere.gouv.fr", "mon nouveau mot de passe")).user_id
    for _ in range(2):
        await world.links.forgotten("agent@ministere.gouv.fr", "10.0.0.2")
    with pytest.raises(RateLimited):  # the 4th request for this account in the window
        await world.links.forgotten("agent@ministere.gouv.fr", "10.0.0.3")
    assert Action.PASSWORD_RESET_REQUESTED in await _actions(world, issued.user_id)


async def test_a_mail_server_that_fails_leaves_the_link_to_the_admin(world: World) -> None:
    world.links._mailer = SmtpMailer(host="127.0.0.1", port=free_port(), sender="x@ministere.gouv.fr", tls="none",
                                     timeout_s=2)
    issued = await world.links.invite(SYSTEM, email="agent@ministere.gouv.fr")
    assert not issued.mailed
    await world.links.open(issued.token)


async def test_changing_ones_password_keeps_only_this_session(world: World) -> None:
    issued = await world.links.invite(SYSTEM, email="agent@ministere.gouv.fr")
    principal = await world.links.redeem(issued.token, PASSWORD)
    here, elsewhere = await world.web.open(principal.user_id), await world.web.open(principal.user_id)
    with pytest.raises(Unauthenticated):
        await world.identity.change_password(principal, "pas le bon mot de passe", "un nouveau mot de passe",
                                             keep_session=here.token)
    with pytest.raises(InvalidRequest):
        await world.identity.change_password(principal, PASSWORD, "court", keep_session=here.token)
    await world.identity.change_password(principal, PASSWORD, "un nouveau mot de passe", keep_session=here.token)
    assert await world.web.resolve(here.token) is not None and await world.web.resolve(elsewhere.token) is None
    with pytest.raises(Unauthenticated):
        await world.identity.verify_password(issued.email, PASSWORD)
    assert Action.PASSWORD_CHANGED in await _actions(world, principal.user_id)


CSV = """Nom;E-mail;Rôle;Groupes
Anne Martin;anne.martin@ministere.gouv.fr;user;Bureau A|Bureau B
Paul Durand;PAUL.DURAND@ministere.gouv.fr;;
"""


async def test_an_import_is_previewed_then_written_whole(world: World, inbox: Inbox) -> None:
    for name in ("Bureau A", "Bureau B"):
        await world.identity.create_group(SYSTEM, name=name)
    await world.identity.create_user(SYSTEM, email="deja@ministere.gouv.fr")
    wrong = (CSV + "Déjà;deja@ministere.gouv.fr;user;\nX;pas-une-adresse;chef;Bureau Z\n"
             "Anne bis;Anne.Martin@ministere.gouv.fr;;\n").encode("cp1252")  # as the French Excel saves it
    plan = await world.links.plan_import(SYSTEM, wrong)
    assert [(row.line, row.problems) for row in plan.rows] == [
        (2, []), (3, []), (4, [("email_taken", "deja@ministere.gouv.fr")]),
        (5, [("invalid_email", "pas-une-adresse"), ("unknown_role", "chef"), ("unknown_group", "Bureau Z")]),
        (6, [("email_twice", "anne.martin@ministere.gouv.fr")])]
    assert not plan.ready
    with pytest.raises(InvalidRequest):
        await world.links.import_accounts(SYSTEM, wrong)
    with pytest.raises(NotFound):  # nothing was written
        await world.identity.find_user(SYSTEM, "anne.martin@ministere.gouv.fr")

    links = await world.links.import_accounts(SYSTEM, ("\ufeff" + CSV).encode())
    assert [(link.email, link.mailed) for link in links] == [("anne.martin@ministere.gouv.fr", True),
                                                            ("paul.durand@ministere.gouv.fr", True)]
    anne = await world.identity.find_user(SYSTEM, "anne.martin@ministere.gouv.fr")
    assert (anne.name, anne.role.name, sorted(g.name for g in anne.groups)) == ("Anne Martin", "user",
                                                                                ["Bureau A", "Bureau B"])
    assert {m["To"] for m in inbox.messages[-2:]} == {"anne.martin@ministere.gouv.fr",
                                                         "paul.durand@ministere.gouv.fr"}
    await world.links.redeem(links[1].token, PASSWORD)
    async with world.sessions() as session:
        assert await session.scalar(select(User.password_hash).where(User.id == links[1].user_id))
        assert await session.scalar(select(LoginSession.id).limit(1)) is None


async def test_an_unreadable_import_is_refused(world: World) -> None:
    for data, code in ((b"nom,role\nA,user\n", "import_no_header"), (b"email\n" + b"a@b.fr\n" * 1001, "import_too_many"),
                       (b"\x00\x01", "import_no_header")):
        with pytest.raises(InvalidRequest) as refused:
            await world.links.plan_import(SYSTEM, data)
        assert refused.value.code in (code, "import_not_csv")


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # the test server's plain AUTH
async def test_the_mail_server_gets_its_login_and_it_is_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    mail = Mail(to="agent@ministere.gouv.fr", subject="Essai", body="Bonjour")
    with smtp_server(login=("socle", "le secret du relais")) as inbox:
        def mailer(password: str) -> SmtpMailer:
            return SmtpMailer(host="127.0.0.1", port=inbox.port, sender="ia@ministere.gouv.fr", tls="none",
                              user="socle", password=password)

        await mailer("le secret du relais").send(mail)
        assert [m["Subject"] for m in inbox.messages] == ["Essai"]
        with pytest.raises(BackendUnavailable) as refused:
            await mailer("pas le bon").send(mail)
    assert refused.value.code == "mail_unavailable"
    assert "pas le bon" not in str(refused.value) + caplog.text + repr(mailer("pas le bon"))


def test_smtp_settings_are_complete_or_refused() -> None:
    with pytest.raises(ValidationError, match="SOCLE_PUBLIC_URL"):
        Settings(_env_file=None, smtp_host="smtp.ministere.gouv.fr", smtp_sender="ia@ministere.gouv.fr")
    with pytest.raises(ValidationError, match="web address"):
        Settings(_env_file=None, public_url="ia.ministere.gouv.fr")
    settings = Settings(_env_file=None, smtp_host="smtp.ministere.gouv.fr", smtp_sender="ia@ministere.gouv.fr",
                        public_url="https://ia.ministere.gouv.fr/", smtp_password="s3cret")
    assert settings.public_url == "https://ia.ministere.gouv.fr" and settings.mail_configured
    assert "s3cret" not in repr(settings) and "s3cret" not in repr(SmtpMailer.from_settings(settings))
    assert SmtpMailer.from_settings(Settings(_env_file=None, smtp_host="")) is None
