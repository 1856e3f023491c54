"""Signing in and out: wrong passwords, session fixation, disabled accounts, cookie attributes."""
from __future__ import annotations

import secrets
import subprocess
import unicodedata

import httpx
from playwright.sync_api import BrowserContext, Page, expect

from tests.support.servers import SOCLE, Server
from tests.ui.conftest import (
    PASSWORD,
    Account,
    check_page,
    http_sign_in,
    http_sign_in_attempt,
    new_account,
    sign_in,
)


def _session_cookie(context: BrowserContext) -> dict | None:
    return next((c for c in context.cookies() if c["name"] == "socle_session"), None)


def test_a_page_asks_to_sign_in_and_a_wrong_password_is_refused(page: Page, context: BrowserContext,
                                                                 account: Account) -> None:
    page.goto("/ui/documents")
    expect(page).to_have_url("/ui/connexion?suivant=%2Fui%2Fdocuments")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    check_page(page, "connexion")
    page.get_by_label("Adresse électronique").fill(account.email)
    page.get_by_label("Mot de passe").fill("pas le bon mot de passe")
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("alert")).to_contain_text("Adresse électronique ou mot de passe incorrect")
    assert _session_cookie(context) is None
    check_page(page, "connexion-refusee")

    page.get_by_label("Mot de passe").fill(account.password)
    page.get_by_role("button", name="Se connecter").click()
    expect(page).to_have_url("/ui/documents")  # where the user was going
    cookie = _session_cookie(context)
    assert cookie is not None
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/ui"


def test_sign_in_rotates_the_session_and_sign_out_ends_it(page: Page, context: BrowserContext, account: Account,
                                                            ui_server: Server, admin_api: httpx.Client) -> None:
    # An attacker signs in as themselves and plants their session id in the victim's browser, for the UI's
    # path and, to shadow the real cookie, for the whole site.
    attacker = new_account(ui_server, admin_api)
    planted = http_sign_in(ui_server, attacker)
    context.add_cookies([{"name": "socle_session", "value": planted, "domain": "127.0.0.1", "path": path}
                         for path in ("/", "/ui")])
    sign_in(page, account)
    mine = [c["value"] for c in context.cookies() if c["name"] == "socle_session" and c["path"] == "/ui"]
    assert mine and mine[0] != planted
    expect(page.locator(".socle-account").first).to_have_text(account.email)  # not the attacker's account

    def status(token: str) -> int:
        return httpx.get(ui_server.url + "/ui/chat", cookies={"socle_session": token}).status_code

    assert status(planted) == 303 and status(mine[0]) == 200  # the planted session was closed at sign-in
    page.get_by_role("button", name="Se déconnecter").click()
    expect(page).to_have_url("/ui/connexion?ok=deconnecte")
    expect(page.get_by_role("status")).to_contain_text("Vous êtes déconnecté")
    assert status(mine[0]) == 303  # the session is gone on the server, not only from the browser


def test_a_disabled_account_is_refused_and_its_sessions_stop(page: Page, account: Account,
                                                              admin_api: httpx.Client) -> None:
    sign_in(page, account)
    assert admin_api.patch(f"/users/{account.id}", json={"is_active": False}).status_code == 200
    page.goto("/ui/documents")
    expect(page).to_have_url("/ui/connexion?suivant=%2Fui%2Fdocuments")
    page.get_by_label("Adresse électronique").fill(account.email)
    page.get_by_label("Mot de passe").fill(account.password)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("alert")).to_contain_text("mot de passe incorrect")


def test_pages_carry_security_headers(ui_server: Server) -> None:
    response = httpx.get(ui_server.url + "/ui/connexion")
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert httpx.get(ui_server.url + "/ui/static/dsfr/dsfr.min.css").status_code == 200


def test_set_password_refuses_a_short_password(account: Account, ui_server: Server) -> None:
    done = subprocess.run([str(SOCLE), "users", "set-password", account.email, "--password-stdin"],
                          input="court\n", env=ui_server.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "at least 12 characters" in done.stderr
    assert http_sign_in(ui_server, account)  # the previous password still works


def test_an_address_is_one_however_its_accents_case_and_width_are_typed(ui_server: Server,
                                                                       admin_api: httpx.Client) -> None:
    tag = secrets.token_hex(3)
    email = f"élodie-{tag}@ministère.gouv.fr"  # composed accents (NFC), as most keyboards type them
    assert admin_api.post("/users", json={"email": email}).status_code == 201
    typed = unicodedata.normalize("NFD", email).upper()  # decomposed (a Mac's), in capitals
    done = subprocess.run([str(SOCLE), "users", "set-password", typed, "--password-stdin"],
                          input=PASSWORD + "\n", env=ui_server.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    wide = f"ｅ\u0301ｌｏｄｉｅ-{tag}@ministère.gouv.fr"  # full-width letters, a combining accent
    for address in (unicodedata.normalize("NFD", email), wide, f"élodie-{tag}@xn--ministre-60a.gouv.fr"):
        with httpx.Client(base_url=ui_server.url) as http:
            assert http_sign_in_attempt(http, address, PASSWORD).status_code == 303, address
