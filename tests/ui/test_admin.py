"""The administration pages: accounts, groups, quotas and backends, through the same services as the API."""
from __future__ import annotations

import re
import secrets

import httpx
from playwright.sync_api import BrowserContext, Dialog, Page, expect

from tests.support.forms import forged
from tests.support.servers import Server
from tests.ui.conftest import Account, check_page, csrf_of, new_account, sign_in


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
    picker = page.get_by_label(f"Ajouter au groupe Bureau {user['id']}")
    picker.press_sequentially(email.split("@")[0])  # a part of the address: the field suggests the person
    suggestion = page.locator(f"#personnes-{_group_id(admin_api, user['id'])} option")
    expect(suggestion).to_have_count(1)
    picker.fill(suggestion.get_attribute("value") or "")
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

    # Quotas set with the pickers: a preset fills the figures, the person is found by a part of their name.
    page.goto("/ui/admin/quotas")
    page.get_by_role("button", name="Agent").click()
    expect(page.get_by_label("S'applique à")).to_have_value("user")
    expect(page.get_by_label("Requêtes par jour")).to_have_value("1000")
    page.get_by_label("Qui").press_sequentially(email.split("@")[0])
    expect(page.locator("#sujets option")).to_have_count(1)
    expect(page.locator("#sujets-trouves")).to_have_text("1 suggestion : choisissez dans la liste.")
    page.get_by_label("Qui").fill(page.locator("#sujets option").get_attribute("value") or "")
    page.get_by_label("Requêtes par minute").fill("12")
    page.get_by_role("button", name="Créer le quota").click()
    expect(page.get_by_role("status")).to_contain_text("Le quota a été créé")
    quota_row = page.get_by_role("row").filter(has_text=f"Un utilisateur : Nouvel <b>agent</b> <{email}>")
    expect(quota_row).to_contain_text("12")
    expect(quota_row).to_contain_text("1\u202f000")  # the preset's requests per day, in French
    check_page(page, "admin-quotas")
    assert any(q["subject"] == str(user["id"]) and q["requests_per_minute"] == 12 and q["requests_per_day"] == 1000
               for q in admin_api.get("/quotas").json()["data"])
    found = page.request.get("/ui/api/admin/sujets", params={"portee": "group", "texte": f"bureau {user['id']}"})
    assert [g["label"] for g in found.json()["data"]] == [f"Bureau {user['id']}"]
    page.get_by_label("Requêtes par minute").fill("douze")
    page.get_by_role("button", name="Créer le quota").click()
    expect(page.get_by_role("alert")).to_contain_text("n'est pas un nombre")
    quota_row.get_by_role("button", name="Supprimer").click()
    expect(page.get_by_role("status")).to_contain_text("Le quota a été supprimé")


def _group_id(admin_api: httpx.Client, member: int) -> int:
    return next(g["id"] for g in admin_api.get("/groups").json()["data"]
                if g["name"] == f"Bureau {member}")


def test_admin_sees_the_backends_health(page: Page, ui_server: Server, admin_api: httpx.Client) -> None:
    sign_in(page, new_account(ui_server, admin_api, role="admin"))
    page.goto("/ui/admin/modeles")
    table = page.get_by_role("table", name=re.compile("^smollm2-135m"))
    expect(table).to_contain_text("Disponible")
    expect(table).to_contain_text("smollm2-135m#0")  # the label users see, beside the address only shown here
    expect(table).to_contain_text("SmolLM2-135M-Instruct.Q4_1.gguf")
    check_page(page, "admin-modeles")


def _admin_page(page: Page, ui_server: Server, admin_api: httpx.Client) -> Account:
    admin = new_account(ui_server, admin_api, role="admin")
    sign_in(page, admin)
    return admin


def test_admin_defines_roles_with_their_permissions(page: Page, ui_server: Server, admin_api: httpx.Client) -> None:
    _admin_page(page, ui_server, admin_api)
    page.goto("/ui/admin")
    page.get_by_role("link", name="Rôles").click()
    expect(page).to_have_url("/ui/admin/roles")
    admin_row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=re.compile("^admin")))
    expect(admin_row).to_contain_text("Toutes les permissions")
    expect(admin_row.get_by_role("button", name="Supprimer")).to_have_count(0)  # built in
    check_page(page, "admin-roles")

    name = f"redacteur-{secrets.token_hex(3)}"
    page.get_by_label("Nom").fill("avec des espaces")
    page.get_by_role("button", name="Créer le rôle").click()
    expect(page.get_by_role("alert")).to_contain_text("Le nom d'un rôle compte de 1 à 64 caractères")
    page.get_by_label("Nom").fill(name)
    page.get_by_label("Description").fill("Rédige avec les modèles <b>sans</b> clé")
    page.get_by_label("Créer et révoquer ses propres clés d'API").uncheck(force=True)  # the DSFR draws the box
    page.get_by_label("Publier une collection pour tous les utilisateurs").check(force=True)
    page.get_by_role("button", name="Créer le rôle").click()
    expect(page.get_by_role("status")).to_contain_text("Le rôle a été créé")
    row = page.get_by_role("row").filter(has_text=name)
    expect(row).to_contain_text("Rédige avec les modèles <b>sans</b> clé")
    expect(row).to_contain_text("Publier une collection pour tous les utilisateurs")
    expect(row).not_to_contain_text("Créer et révoquer ses propres clés")
    role = next(r for r in admin_api.get("/roles").json()["data"] if r["name"] == name)
    assert sorted(role["permissions"]) == ["collections:own", "collections:publish", "models:read", "models:use"]

    row.get_by_role("link", name="Modifier").click()
    expect(page).to_have_url(f"/ui/admin/roles/{role['id']}")
    expect(page.get_by_label("Utiliser les modèles d'IA (conversation, rédaction, recherche dans les documents)")).to_be_checked()
    page.get_by_label("Utiliser les modèles d'IA (conversation, rédaction, recherche dans les documents)").uncheck(force=True)
    page.get_by_label("Lire la consommation de tout le monde (tableau de bord)").check(force=True)
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.get_by_role("status")).to_contain_text("Le rôle a été modifié")
    expect(page.get_by_label("Utiliser les modèles d'IA (conversation, rédaction, recherche dans les documents)")).not_to_be_checked()
    check_page(page, "admin-role")
    role = next(r for r in admin_api.get("/roles").json()["data"] if r["name"] == name)
    assert "models:use" not in role["permissions"] and "usage:read_all" in role["permissions"]

    holder = admin_api.post("/users", json={"email": f"{name}@ministere.gouv.fr", "role": name}).json()
    page.goto("/ui/admin/roles")
    page.get_by_role("row").filter(has_text=name).get_by_role("button", name="Supprimer").click()
    expect(page.get_by_role("alert")).to_contain_text("Ce rôle est encore donné à des utilisateurs")
    admin_api.patch(f"/users/{holder['id']}", json={"role": "user"})
    page.get_by_role("row").filter(has_text=name).get_by_role("button", name="Supprimer").click()
    expect(page.get_by_role("status")).to_contain_text("Le rôle a été supprimé")
    expect(page.get_by_role("row").filter(has_text=name)).to_have_count(0)

    admin_id = next(r["id"] for r in admin_api.get("/roles").json()["data"] if r["name"] == "admin")
    page.goto(f"/ui/admin/roles/{admin_id}")
    expect(page.get_by_role("button", name="Supprimer le rôle")).to_have_count(0)
    page.get_by_label("Toutes les permissions").uncheck(force=True)
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.get_by_role("alert")).to_contain_text("Le rôle admin garde toutes les permissions")


def test_admin_deletes_a_group_after_confirming(context: BrowserContext, ui_server: Server,
                                               admin_api: httpx.Client) -> None:
    page = context.new_page()
    answers, questions = iter([False, True]), []  # cancelled first, then confirmed

    def answer(dialog: Dialog) -> None:
        questions.append(dialog.message)
        dialog.accept() if next(answers) else dialog.dismiss()

    page.on("dialog", answer)
    _admin_page(page, ui_server, admin_api)
    name = f"Bureau {secrets.token_hex(3)}"
    group = admin_api.post("/groups", json={"name": name}).json()
    page.goto("/ui/admin/groupes?page=1000")  # past the end: the last page, where the new group is
    section = page.get_by_role("region", name=name)
    section.get_by_role("button", name="Supprimer le groupe").click()
    expect(section).to_be_visible()  # cancelled: nothing happened
    assert "collections partagées avec ce groupe seront supprimées" in questions[0]
    assert group["id"] in {g["id"] for g in admin_api.get("/groups").json()["data"]}
    section.get_by_role("button", name="Supprimer le groupe").click()
    expect(page.get_by_role("status")).to_contain_text("Le groupe a été supprimé")
    assert group["id"] not in {g["id"] for g in admin_api.get("/groups").json()["data"]}
    assert len(questions) == 2


def test_long_lists_are_paged(page: Page, ui_server: Server, admin_api: httpx.Client) -> None:
    from socle.ui.routes.admin import GROUPS_PER_PAGE, QUOTAS_PER_PAGE, USERS_PER_PAGE

    _admin_page(page, ui_server, admin_api)
    tag = secrets.token_hex(3)
    for n in range(USERS_PER_PAGE + 1):
        assert admin_api.post("/users", json={"email": f"liste-{tag}-{n:02}@ministere.gouv.fr"}).status_code == 201
    for n in range(GROUPS_PER_PAGE + 1):
        assert admin_api.post("/groups", json={"name": f"Liste {tag} {n:02}"}).status_code == 201
    for n in range(QUOTAS_PER_PAGE + 1):
        assert admin_api.post("/quotas", json={"scope": "role", "subject": f"liste-{tag}",
                                               "requests_per_minute": n + 1}).status_code == 201

    page.goto("/ui/admin/utilisateurs")
    pages = page.get_by_role("navigation", name="Pages de la liste des utilisateurs")
    expect(pages.locator('[aria-current="page"]')).to_have_text("1")
    expect(page.locator("tbody tr")).to_have_count(USERS_PER_PAGE)
    check_page(page, "admin-utilisateurs-pages")
    pages.get_by_role("link", name="Dernière page").click()
    expect(page).to_have_url(re.compile(r"/ui/admin/utilisateurs\?page=\d+$"))
    expect(page.get_by_role("row").filter(has_text=f"liste-{tag}-{USERS_PER_PAGE:02}@")).to_have_count(1)
    pages = page.get_by_role("navigation", name="Pages de la liste des utilisateurs")
    expect(pages.get_by_role("link", name="Page suivante")).to_have_attribute("aria-disabled", "true")
    pages.get_by_role("link", name="Page précédente").click()
    expect(page.locator("tbody tr")).to_have_count(USERS_PER_PAGE)

    page.goto("/ui/admin/groupes")
    expect(page.get_by_role("navigation", name="Pages de la liste des groupes")).to_be_visible()
    page.get_by_role("navigation", name="Pages de la liste des groupes").get_by_role("link", name="Dernière page").click()
    expect(page.get_by_role("region", name=f"Liste {tag} {GROUPS_PER_PAGE:02}")).to_be_visible()
    check_page(page, "admin-groupes-pages")

    page.goto("/ui/admin/quotas")
    quotas = page.get_by_role("navigation", name="Pages de la liste des quotas")
    quotas.get_by_role("link", name="Dernière page").click()
    expect(page.get_by_role("row").filter(has_text=f"Chaque utilisateur d'un rôle : liste-{tag}").filter(
        has_text=str(QUOTAS_PER_PAGE + 1))).to_have_count(1)
    for quota in admin_api.get("/quotas").json()["data"]:  # quotas bind calls: leave none behind
        if quota["subject"] == f"liste-{tag}":
            admin_api.delete(f"/quotas/{quota['id']}")


def test_admin_forms_need_the_sessions_token(page: Page, ui_server: Server, admin_api: httpx.Client) -> None:
    """The CSRF check holds for an admin's session too: nothing the forms change is changed without it."""
    _admin_page(page, ui_server, admin_api)
    token = csrf_of(page)
    victim = admin_api.post("/users", json={"email": f"cible-{secrets.token_hex(3)}@ministere.gouv.fr"}).json()
    group = admin_api.post("/groups", json={"name": f"Cible {secrets.token_hex(3)}"}).json()
    role = admin_api.post("/roles", json={"name": f"cible-{secrets.token_hex(3)}",
                                          "permissions": ["models:read"]}).json()
    quotas_before = admin_api.get("/quotas").json()["data"]
    users_before = admin_api.get("/users", params={"limit": 1000}).json()["data"]
    forms = [
        ("/ui/admin/utilisateurs", {"email": "csrf-admin@ministere.gouv.fr", "role": "admin"}),
        (f"/ui/admin/utilisateurs/{victim['id']}", {"role": "admin", "name": "pirate"}),
        (f"/ui/admin/utilisateurs/{victim['id']}/activation", {"active": "0"}),
        ("/ui/admin/groupes", {"name": "csrf"}),
        (f"/ui/admin/groupes/{group['id']}/supprimer", {}),
        (f"/ui/admin/groupes/{group['id']}/membres", {"email": victim["email"]}),
        ("/ui/admin/roles", {"name": "csrf", "permissions": "*"}),
        (f"/ui/admin/roles/{role['id']}", {"permissions": "*", "description": "pirate"}),
        (f"/ui/admin/roles/{role['id']}/supprimer", {}),
        ("/ui/admin/quotas", {"scope": "global", "requests_per_minute": "1"}),
    ]
    for path, form in forms:
        for sent in (form, {**form, "csrf_token": forged(token)}):  # without the token, with a wrong one
            response = page.request.post(path, form=sent, max_redirects=0)
            assert response.status == 403, (path, sent, response.status)
            assert "elle est refusée" in response.text()

    assert admin_api.get("/users", params={"limit": 1000}).json()["data"] == users_before
    assert admin_api.get("/quotas").json()["data"] == quotas_before
    groups = {g["id"]: g for g in admin_api.get("/groups").json()["data"]}
    assert groups[group["id"]]["members"] == []
    roles = {r["name"]: r for r in admin_api.get("/roles").json()["data"]}
    assert "csrf" not in roles and roles[role["name"]]["permissions"] == ["models:read"]
    assert roles[role["name"]]["description"] == ""

    done = page.request.post(f"/ui/admin/groupes/{group['id']}/supprimer", form={"csrf_token": token},
                             max_redirects=0)
    assert done.status == 303  # the same request with the session's token goes through
    assert group["id"] not in {g["id"] for g in admin_api.get("/groups").json()["data"]}
