"""The administration pages: accounts, groups, quotas and backends, through the same services as the API."""
from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from tests.support.servers import Server
from tests.ui.conftest import check_page, new_account, sign_in


def test_admin_creates_a_user_a_group_and_a_quota(page: Page, ui_server: Server, admin_api: httpx.Client) -> None:
    admin = new_account(ui_server, admin_api, role="admin")
    sign_in(page, admin)
    page.goto("/ui/admin/utilisateurs")
    check_page(page, "admin-utilisateurs")
    email = admin.email.replace("agent-", "nouvel-agent-")
    page.get_by_label("Adresse électronique").fill(email)
    page.get_by_label("Nom").fill("Nouvel <b>agent</b>")
    page.get_by_role("button", name="Créer le compte").click()
    expect(page.get_by_role("status")).to_contain_text("Le compte a été créé")
    row = page.get_by_role("row").filter(has_text=email)
    expect(row).to_contain_text("Nouvel <b>agent</b>")
    user = next(u for u in admin_api.get("/users", params={"limit": 1000}).json()["data"] if u["email"] == email)

    page.goto("/ui/admin/groupes")
    page.get_by_label("Nom").fill(f"Bureau {user['id']}")
    page.get_by_role("button", name="Créer le groupe").click()
    expect(page.get_by_role("status")).to_contain_text("Le groupe a été créé")
    page.get_by_label(f"Ajouter au groupe Bureau {user['id']}").fill(email)
    page.get_by_role("button", name="Ajouter").last.click()
    expect(page.get_by_role("status")).to_contain_text("Le membre a été ajouté")
    expect(page.get_by_role("region", name=f"Bureau {user['id']}")).to_contain_text(email)
    check_page(page, "admin-groupes")

    page.goto("/ui/admin/utilisateurs")
    row.get_by_role("link", name="Modifier").click()
    expect(page.get_by_label(f"Bureau {user['id']}")).to_be_checked()
    page.get_by_label("Rôle").select_option("admin")
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.get_by_role("status")).to_contain_text("Le compte a été modifié")
    expect(page.get_by_label("Rôle")).to_have_value("admin")
    page.get_by_role("button", name="Désactiver le compte").click()
    expect(page.get_by_role("status")).to_contain_text("Le compte est désactivé")
    check_page(page, "admin-utilisateur")

    page.goto("/ui/admin/quotas")
    page.get_by_label("S'applique à").select_option("user")
    page.get_by_label("Qui").fill(str(user["id"]))
    page.get_by_label("Requêtes par minute").fill("12")
    page.get_by_role("button", name="Créer le quota").click()
    expect(page.get_by_role("status")).to_contain_text("Le quota a été créé")
    quota_row = page.get_by_role("row").filter(has_text=f"Un utilisateur : {user['id']}")
    expect(quota_row).to_contain_text("12")
    check_page(page, "admin-quotas")
    assert any(q["subject"] == str(user["id"]) and q["requests_per_minute"] == 12
               for q in admin_api.get("/quotas").json()["data"])
    page.get_by_label("Requêtes par minute").fill("douze")
    page.get_by_role("button", name="Créer le quota").click()
    expect(page.get_by_role("alert")).to_contain_text("n'est pas un nombre")
    quota_row.get_by_role("button", name="Supprimer").click()
    expect(page.get_by_role("status")).to_contain_text("Le quota a été supprimé")


def test_admin_sees_the_backends_health(page: Page, ui_server: Server, admin_api: httpx.Client) -> None:
    sign_in(page, new_account(ui_server, admin_api, role="admin"))
    page.goto("/ui/admin/modeles")
    table = page.get_by_role("table", name=re.compile("^smollm2-135m"))
    expect(table).to_contain_text("Disponible")
    check_page(page, "admin-modeles")
