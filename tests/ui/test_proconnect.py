"""Signing in with ProConnect: the real server configured with a local OpenID provider (a peer process shaped
like ProConnect, ``tests/support/oidc_provider.py``), driven through the browser: the button, the round trip,
sign-out at both ends; refusals of unknown, disabled or unverified accounts and of tampered answers (state,
nonce, signature) and of a callback from another browser."""
from __future__ import annotations

import re
import secrets
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet
from playwright.sync_api import Browser, Page, expect

from tests.support.forms import forged
from tests.support.servers import ROOT, Server, free_port, start_server, stop, wait_until_up
from tests.ui.conftest import ENV, api_of, check_page, new_account, page_on, sign_in

CLIENT_ID = "socle-ia-test"
CATALOGUE = """models:
  - {{id: remote-chat, type: chat, backends: [{{type: openai, url: "{mock}/v1", model: mock-chat}}]}}
"""
BUTTON = re.compile("identifier avec ProConnect")


def _start_provider(log_dir: Path, secret: str, *, basic: bool = False) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    log = log_dir / f"oidc-{port}.log"
    command = [sys.executable, "-m", "tests.support.oidc_provider", "--port", str(port), "--client-id", CLIENT_ID,
               "--client-secret", secret, *(["--basic"] if basic else [])]
    process = subprocess.Popen(command, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url + "/.well-known/openid-configuration", process, log)
    return url, process


def _start_platform(tmp: pytest.TempPathFactory, mock_backend: str, issuer: str, secret: str,
                    **env: str) -> Server:
    config = tmp.mktemp("proconnect-config") / "models.yaml"
    config.write_text(CATALOGUE.format(mock=mock_backend))
    return start_server(tmp.mktemp("proconnect-server"), config=config, extra_env={
        **ENV, "SOCLE_OIDC_ISSUER": issuer, "SOCLE_OIDC_CLIENT_ID": CLIENT_ID, "SOCLE_OIDC_CLIENT_SECRET": secret,
        **env})


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    secret = secrets.token_urlsafe(24)
    url, process = _start_provider(tmp_path_factory.mktemp("oidc"), secret)
    yield url, secret
    stop(process)


@pytest.fixture(scope="module")
def pc_server(tmp_path_factory: pytest.TempPathFactory, mock_backend: str, provider: tuple[str, str]) -> Iterator[Server]:
    """Accounts are not created by signing in: an unknown address is refused."""
    server = _start_platform(tmp_path_factory, mock_backend, *provider)
    yield server
    stop(server.process)


@pytest.fixture
def pc_page(browser: Browser, pc_server: Server) -> Iterator[Page]:
    with page_on(browser, pc_server) as page:
        yield page


def _account(server: Server, *, role: str = "user") -> str:
    email = f"agent-{secrets.token_hex(4)}@ministere.gouv.fr"
    with api_of(server) as api:
        assert api.post("/users", json={"email": email, "name": "Agent", "role": role}).status_code == 201
    return email


def _next_user(provider_url: str, email: str, **behaviour: object) -> None:
    assert httpx.post(provider_url + "/test/user", json={"email": email, **behaviour}).status_code == 200


def _events(provider_url: str, email: str | None = None) -> list[dict]:
    return [e for e in httpx.get(provider_url + "/test/log").json() if email is None or e.get("email") == email]


def _session(page: Page) -> str | None:
    return next((c["value"] for c in page.context.cookies() if c["name"] == "socle_session"), None)


def _live(server: Server, token: str) -> bool:
    return httpx.get(server.url + "/ui/chat", cookies={"socle_session": token}).status_code == 200


def test_the_button_shows_only_where_proconnect_is_configured(pc_page: Page, page: Page, pc_server: Server,
                                                              provider: tuple[str, str]) -> None:
    page.goto("/ui/connexion")  # the main test server: no ProConnect
    expect(page.get_by_role("button", name="Se connecter")).to_be_visible()
    expect(page.get_by_role("button", name=BUTTON)).to_have_count(0)
    # Forms may lead to the provider (Chromium applies form-action to a form's redirects), and nowhere else.
    policy = httpx.get(pc_server.url + "/ui/connexion").headers["content-security-policy"]
    assert f"form-action 'self' {provider[0]};" in policy
    pc_page.goto("/ui/connexion")
    expect(pc_page.get_by_role("button", name=BUTTON)).to_be_visible()
    expect(pc_page.get_by_role("link", name="Qu’est-ce que ProConnect ?")).to_have_attribute(
        "href", "https://www.proconnect.gouv.fr/")
    check_page(pc_page, "connexion-proconnect")


def test_sign_in_with_proconnect_then_sign_out_of_both(pc_page: Page, pc_server: Server,
                                                       provider: tuple[str, str]) -> None:
    email = _account(pc_server)
    _next_user(provider[0], email)
    pc_page.goto("/ui/documents")
    expect(pc_page).to_have_url("/ui/connexion?suivant=%2Fui%2Fdocuments")
    pc_page.get_by_role("button", name=BUTTON).click()
    expect(pc_page).to_have_url("/ui/documents")  # there and back, signed in, where the user was going
    expect(pc_page.locator(".socle-account").first).to_have_text(email)
    assert [e["event"] for e in _events(provider[0], email)][-3:] == ["authorize", "token", "userinfo"]
    first = _session(pc_page)
    assert first and _live(pc_server, first)
    assert not [c for c in pc_page.context.cookies() if c["name"] == "socle_proconnect"]  # the attempt is spent
    pc_page.goto("/ui/compte")  # an account without a password has none to change
    expect(pc_page.get_by_role("link", name="Changer mon mot de passe")).to_have_count(0)
    expect(pc_page.get_by_role("main")).to_contain_text("vous vous connectez avec ProConnect")

    other = _account(pc_server)  # signing in again, as someone else: a new session, the previous one closed
    _next_user(provider[0], other, email_in_id_token=True, email_verified=True)
    pc_page.goto("/ui/connexion")
    pc_page.get_by_role("button", name=BUTTON).click()
    expect(pc_page.locator(".socle-account").first).to_have_text(other)
    second = _session(pc_page)
    assert second and second != first and not _live(pc_server, first) and _live(pc_server, second)

    logouts = len([e for e in _events(provider[0]) if e["event"] == "logout"])
    pc_page.get_by_role("button", name="Se déconnecter").click()
    expect(pc_page).to_have_url("/ui/connexion?ok=deconnecte")  # by way of the provider's end of session
    expect(pc_page.get_by_role("status")).to_contain_text("Vous êtes déconnecté")
    assert len([e for e in _events(provider[0]) if e["event"] == "logout"]) == logouts + 1
    assert not _live(pc_server, second)


def test_the_provider_s_address_finds_its_account_however_it_is_written(pc_page: Page, pc_server: Server,
                                                                          provider: tuple[str, str]) -> None:
    email = f"élodie-{secrets.token_hex(4)}@ministère.gouv.fr"
    with api_of(pc_server) as api:
        assert api.post("/users", json={"email": email, "name": "Élodie"}).status_code == 201
    _next_user(provider[0], unicodedata.normalize("NFD", email).upper())  # decomposed accents, capitals
    pc_page.goto("/ui/connexion")
    pc_page.get_by_role("button", name=BUTTON).click()
    expect(pc_page).to_have_url("/ui/chat")
    expect(pc_page.locator(".socle-account").first).to_have_text(email)


def test_an_address_without_an_account_is_refused_clearly(pc_page: Page, provider: tuple[str, str]) -> None:
    _next_user(provider[0], f"inconnu-{secrets.token_hex(4)}@ministere.gouv.fr")
    pc_page.goto("/ui/connexion")
    pc_page.get_by_role("button", name=BUTTON).click()
    expect(pc_page.get_by_role("alert")).to_contain_text("Aucun compte Socle IA n'est ouvert à votre adresse")
    assert _session(pc_page) is None
    check_page(pc_page, "connexion-proconnect-refusee")


@pytest.mark.parametrize(("behaviour", "message"), [
    ({"tamper": "state"}, "ne correspond pas à la connexion commencée depuis ce navigateur"),
    ({"tamper": "nonce"}, "ne correspond pas à cette connexion"),
    ({"tamper": "signature"}, "n'a pas pu être vérifiée"),
    ({"email_verified": False}, "ne garantit pas votre adresse"),
])
def test_tampered_or_unverified_answers_are_refused(pc_page: Page, pc_server: Server, provider: tuple[str, str],
                                                     behaviour: dict, message: str) -> None:
    _next_user(provider[0], _account(pc_server), **behaviour)
    pc_page.goto("/ui/connexion")
    with pc_page.expect_response(re.compile("/ui/connexion/proconnect/retour")) as waiting:
        pc_page.get_by_role("button", name=BUTTON).click()
    assert waiting.value.status == 401
    expect(pc_page.get_by_role("alert")).to_contain_text(message)
    assert _session(pc_page) is None


def test_a_disabled_account_is_refused(pc_page: Page, pc_server: Server, provider: tuple[str, str]) -> None:
    email = _account(pc_server)
    with api_of(pc_server) as api:
        user = next(u for u in api.get("/users", params={"limit": 1000}).json()["data"] if u["email"] == email)
        assert api.patch(f"/users/{user['id']}", json={"is_active": False}).status_code == 200
    _next_user(provider[0], email)
    pc_page.goto("/ui/connexion")
    pc_page.get_by_role("button", name=BUTTON).click()
    expect(pc_page.get_by_role("alert")).to_contain_text("Votre compte Socle IA est désactivé")
    assert _session(pc_page) is None


def test_a_callback_only_signs_in_the_browser_that_started(pc_server: Server, provider: tuple[str, str]) -> None:
    """Login CSRF: the provider's answer, carried to another browser, signs no one in there."""
    _next_user(provider[0], _account(pc_server))
    with httpx.Client(base_url=pc_server.url) as starter:
        form = starter.get("/ui/connexion")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        assert starter.post("/ui/connexion/proconnect", data={"csrf_token": forged(token.group(1))}).status_code \
            == 403  # starting needs the sign-in form's own token too
        leave = starter.post("/ui/connexion/proconnect", data={"csrf_token": token.group(1)})
        assert leave.status_code == 303 and leave.headers["location"].startswith(provider[0] + "/authorize?")
        query = dict(pair.split("=", 1) for pair in urlsplit(leave.headers["location"]).query.split("&"))
        assert query["code_challenge_method"] == "S256" and query["nonce"] and query["state"]
        back = httpx.get(leave.headers["location"])
        assert back.status_code == 302
        callback = back.headers["location"]

        with httpx.Client(base_url=pc_server.url) as victim:
            refused = victim.get(urlsplit(callback)._replace(scheme="", netloc="").geturl())
            assert refused.status_code == 401 and "socle_session" not in refused.cookies
            assert "pas été commencée depuis ce navigateur" in refused.text

        signed_in = starter.get(urlsplit(callback)._replace(scheme="", netloc="").geturl())
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/ui/chat"
        assert "socle_session" in signed_in.cookies
        replay = starter.get(urlsplit(callback)._replace(scheme="", netloc="").geturl())
        assert replay.status_code == 401  # the attempt was used once, and the code too


def test_accounts_are_created_when_the_platform_allows_it(tmp_path_factory: pytest.TempPathFactory, browser: Browser,
                                                          mock_backend: str) -> None:
    """The other ProConnect setting: a new address gets an account with the default role; the client
    authenticates to the token endpoint with HTTP Basic (client_secret_basic)."""
    secret = secrets.token_urlsafe(24)
    url, process = _start_provider(tmp_path_factory.mktemp("oidc-basic"), secret, basic=True)
    server = _start_platform(tmp_path_factory, mock_backend, url, secret, SOCLE_OIDC_CREATE_USERS="true")
    try:
        email = f"nouvelle-{secrets.token_hex(4)}@ministere.gouv.fr"
        _next_user(url, email)
        with page_on(browser, server) as page:
            page.goto("/ui/connexion")
            page.get_by_role("button", name=BUTTON).click()
            expect(page).to_have_url("/ui/chat")
            expect(page.locator(".socle-account").first).to_have_text(email)
        with api_of(server) as api:
            user = next(u for u in api.get("/users", params={"limit": 1000}).json()["data"] if u["email"] == email)
        assert user["role"] == "user" and user["name"] == "Camille Agent"
    finally:
        stop(server.process)
        stop(process)


def test_an_administrator_turns_proconnect_on_from_the_browser(tmp_path_factory: pytest.TempPathFactory,
                                                              browser: Browser, mock_backend: str,
                                                              provider: tuple[str, str]) -> None:
    """No ProConnect in the environment: the administrator enters it on the settings page (its secret sealed,
    never shown again), and the sign-in page offers it without a restart; off again, the button goes."""
    config = tmp_path_factory.mktemp("proconnect-site-config") / "models.yaml"
    config.write_text(CATALOGUE.format(mock=mock_backend))
    server = start_server(tmp_path_factory.mktemp("proconnect-site"), config=config, extra_env={
        **ENV, "SOCLE_ENCRYPTION_KEYS": Fernet.generate_key().decode(), "SOCLE_SITE_REFRESH_S": "1"})
    try:
        with api_of(server) as api:
            admin = new_account(server, api, role="admin")
        email = _account(server)
        with page_on(browser, server) as page, page_on(browser, server) as visitor:
            visitor.goto("/ui/connexion")
            expect(visitor.get_by_role("button", name=BUTTON)).to_have_count(0)
            sign_in(page, admin)
            page.goto("/ui/admin/parametres")
            page.get_by_label("Proposer la connexion avec ProConnect").check(force=True)
            page.get_by_label("Adresse du fournisseur d'identité").fill(provider[0])
            page.get_by_label("Identifiant client").fill(CLIENT_ID)
            page.get_by_label("Secret client").fill(provider[1])
            page.get_by_role("button", name="Enregistrer les paramètres").click()
            expect(page.get_by_role("status")).to_contain_text("Les paramètres sont enregistrés")
            expect(page.get_by_label("Secret client")).to_have_value("")  # never shown again
            expect(page.locator("main")).to_contain_text("Un secret est enregistré, chiffré")
            assert provider[1] not in page.content()
            check_page(page, "admin-parametres-proconnect")

            _next_user(provider[0], email)
            visitor.goto("/ui/connexion")
            visitor.get_by_role("button", name=BUTTON).click()
            expect(visitor.locator(".socle-account").first).to_have_text(email)

            page.get_by_label("Proposer la connexion avec ProConnect").uncheck(force=True)
            page.get_by_role("button", name="Enregistrer les paramètres").click()
            expect(page.get_by_role("status")).to_contain_text("Les paramètres sont enregistrés")
            page.goto("/ui/admin/audit")
            expect(page.get_by_role("table")).to_contain_text("Connexion ProConnect modifiée")
        with page_on(browser, server) as later:
            later.goto("/ui/connexion")
            expect(later.get_by_role("button", name=BUTTON)).to_have_count(0)
    finally:
        stop(server.process)
