"""My API keys: a key is shown once, works with the API, and stops working once revoked."""
from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from tests.support.servers import Server
from tests.ui.conftest import Account, check_page, sign_in


def test_create_use_and_revoke_a_key(page: Page, account: Account, ui_server: Server) -> None:
    sign_in(page, account)
    page.get_by_role("link", name="Mes clés d'API").click()
    expect(page.get_by_role("cell", name="Vous n'avez aucune clé.")).to_be_visible()
    check_page(page, "cles")
    page.get_by_label("Nom").fill("Mon script <b>de test</b>")
    page.get_by_role("button", name="Créer la clé").click()
    secret = page.get_by_label("Votre nouvelle clé").input_value()
    assert secret.startswith("sk-socle-")
    expect(page.get_by_role("cell", name="Mon script <b>de test</b>")).to_be_visible()
    check_page(page, "cle-creee")

    api = httpx.Client(base_url=ui_server.base_url, headers={"Authorization": f"Bearer {secret}"})
    me = api.get("/me")
    assert me.status_code == 200 and me.json()["email"] == account.email  # the key is the user's own

    page.goto("/ui/cles")  # shown once: never again
    assert secret not in page.content()
    row = page.get_by_role("row").filter(has_text="Mon script")
    expect(row).to_contain_text("Active")
    row.get_by_role("button", name="Révoquer").click()
    expect(page.get_by_role("status")).to_contain_text("La clé a été révoquée")
    expect(page.get_by_role("row").filter(has_text="Mon script")).to_contain_text("Révoquée")
    assert api.get("/me").status_code == 401
