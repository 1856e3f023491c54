"""The limits of password sign-in and of sessions, on a server of their own with small figures: failed
sign-ins throttled per account and per client address (counted in Redis, shared by two worker processes),
and sessions that end when left idle."""
from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.support.servers import Server, start_server, stop
from tests.ui.conftest import (
    ENV,
    check_page,
    http_sign_in_attempt,
    new_account,
    page_on,
    sign_in,
)

PER_ACCOUNT, PER_ADDRESS = 3, 6
IDLE_S = 6  # SOCLE_UI_SESSION_IDLE_MINUTES=0.1
CATALOGUE = """models:
  - {{id: remote-chat, type: chat, backends: [{{type: openai, url: "{mock}/v1", model: mock-chat}}]}}
"""
TOO_MANY = "Trop de tentatives de connexion ont échoué"


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory, mock_backend: str) -> Iterator[Server]:
    config = tmp_path_factory.mktemp("strict-config") / "models.yaml"
    config.write_text(CATALOGUE.format(mock=mock_backend))
    server = start_server(tmp_path_factory.mktemp("strict-server"), config=config, extra_env={
        **ENV, "SOCLE_WORKERS": "2", "SOCLE_REDIS_URL": "redis://127.0.0.1:6379/0",
        "SOCLE_REDIS_KEY_PREFIX": f"socle-test-{secrets.token_hex(4)}",
        "SOCLE_UI_SIGN_IN_FAILURES_PER_ACCOUNT": str(PER_ACCOUNT),
        "SOCLE_UI_SIGN_IN_FAILURES_PER_IP": str(PER_ADDRESS),
        "SOCLE_UI_TRUSTED_PROXIES": "127.0.0.1",  # the tests play a reverse proxy, naming the client
        "SOCLE_UI_SESSION_IDLE_MINUTES": str(IDLE_S / 60)})
    yield server
    stop(server.process)


@pytest.fixture(scope="module")
def strict_api(strict_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=strict_server.base_url, timeout=60,
                      headers={"Authorization": f"Bearer {strict_server.admin_key}"}) as http:
        yield http


def _from(address: str) -> dict[str, str]:
    return {"x-forwarded-for": address}


def _address() -> str:
    """A client address of its own for each test (the counters live in Redis for the whole run)."""
    return f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


def _try(server: Server, email: str, password: str, address: str) -> httpx.Response:
    with httpx.Client(base_url=server.url) as http:  # a new browser each time: counted all the same
        return http_sign_in_attempt(http, email, password, headers=_from(address))


def test_failed_sign_ins_are_throttled_per_account(strict_server: Server, strict_api: httpx.Client,
                                                   browser: Browser) -> None:
    account = new_account(strict_server, strict_api)
    for _ in range(PER_ACCOUNT):
        assert _try(strict_server, account.email, "pas le bon mot de passe", _address()).status_code == 401
    refused = _try(strict_server, account.email.upper(), account.password, _address())  # right, and from elsewhere
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert TOO_MANY in refused.text and "socle_session" not in refused.cookies

    with page_on(browser, strict_server, extra_http_headers=_from(_address())) as page:
        page.goto("/ui/connexion")
        page.get_by_label("Adresse électronique").fill(account.email)
        page.get_by_label("Mot de passe").fill(account.password)
        with page.expect_response("**/ui/connexion") as waiting:
            page.get_by_role("button", name="Se connecter").click()
        assert waiting.value.status == 429
        expect(page.get_by_role("alert")).to_contain_text(TOO_MANY)
        expect(page.get_by_role("alert")).to_contain_text("réessayez dans 15 minutes")
        check_page(page, "connexion-trop-de-tentatives")
    other = new_account(strict_server, strict_api)  # other accounts are not held
    assert _try(strict_server, other.email, other.password, _address()).status_code == 303


def test_failed_sign_ins_are_throttled_per_client_address(strict_server: Server, strict_api: httpx.Client) -> None:
    address = _address()
    for _ in range(PER_ADDRESS):
        unknown = f"inconnu-{secrets.token_hex(4)}@ministere.gouv.fr"
        assert _try(strict_server, unknown, "devine", address).status_code == 401
    account = new_account(strict_server, strict_api)
    assert _try(strict_server, account.email, account.password, address).status_code == 429
    assert _try(strict_server, account.email, account.password, _address()).status_code == 303  # elsewhere: fine


def test_successful_sign_ins_are_not_counted(strict_server: Server, strict_api: httpx.Client) -> None:
    account, address = new_account(strict_server, strict_api), _address()
    for _ in range(PER_ADDRESS + 2):  # more successes than either limit, from one address
        assert _try(strict_server, account.email, account.password, address).status_code == 303
    for _ in range(PER_ACCOUNT - 1):  # a success also forgets the account's failures
        assert _try(strict_server, account.email, "pas le bon", address).status_code == 401
    assert _try(strict_server, account.email, account.password, address).status_code == 303
    for _ in range(PER_ACCOUNT - 1):
        assert _try(strict_server, account.email, "pas le bon", address).status_code == 401
    assert _try(strict_server, account.email, account.password, address).status_code == 303


def test_an_idle_session_ends_and_sends_to_sign_in(strict_server: Server, strict_api: httpx.Client,
                                                   browser: Browser) -> None:
    account = new_account(strict_server, strict_api)
    with page_on(browser, strict_server, extra_http_headers=_from(_address())) as page:
        sign_in(page, account)
        token = next(c["value"] for c in page.context.cookies() if c["name"] == "socle_session")
        signed_in_at = time.monotonic()
        while time.monotonic() - signed_in_at < IDLE_S + 2:  # in use: it lasts beyond the idle time
            time.sleep(2)
            page.goto("/ui/documents")
            expect(page).to_have_url("/ui/documents")
        time.sleep(IDLE_S + 1)  # left alone longer than the idle time
        page.goto("/ui/documents")
        expect(page).to_have_url("/ui/connexion?suivant=%2Fui%2Fdocuments")
        response = httpx.get(strict_server.url + "/ui/chat", cookies={"socle_session": token})
        assert response.status_code == 303  # ended on the server, not only in this browser
