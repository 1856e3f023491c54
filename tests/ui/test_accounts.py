"""Accounts administered in the browser: an invitation whose link the person opens to choose a password, an
admin's reset link or typed password, changing one's own password, importing accounts from a CSV file, and a
forgotten password answered by a real e-mail (a server with an SMTP server of its own)."""
from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.mailbox import Inbox, smtp_server
from tests.support.servers import Server, start_server, stop
from tests.ui.conftest import ENV, PASSWORD, Account, api_of, check_page, new_account, page_on, sign_in

PUBLIC_URL = "https://ia.ministere.gouv.fr"


def _invite(page: Page, email: str, name: str = "") -> str:
    """As a signed-in admin: the invitation's link, as the page shows it."""
    page.goto("/ui/admin/utilisateurs")
    page.get_by_label("Adresse électronique").fill(email)
    if name:
        page.get_by_label("Nom").fill(name)
    page.get_by_role("button", name="Créer le compte et l'inviter").click()
    expect(page.get_by_role("status")).to_contain_text("Le compte a été créé")
    link = page.get_by_label(re.compile(f"^Invitation pour .*{re.escape(email)}"))
    url = link.input_value()
    assert "/ui/mot-de-passe?token=" in url
    return url


def _choose_password(page: Page, password: str, confirmation: str | None = None) -> None:
    page.get_by_label(re.compile(r"^Mot de passe")).fill(password)
    page.get_by_label("Confirmation du mot de passe").fill(confirmation or password)
    page.get_by_role("button", name="Enregistrer et me connecter").click()


def test_an_invited_person_opens_the_link_chooses_a_password_and_is_signed_in(
        page: Page, browser: Browser, ui_server: Server, admin_api: httpx.Client) -> None:
    admin = new_account(ui_server, admin_api, role="admin")
    sign_in(page, admin)
    email = f"invite-{secrets.token_hex(4)}@ministere.gouv.fr"
    url = _invite(page, email, "Nouvelle Recrue")
    check_page(page, "admin-invitation")
    expect(page.get_by_role("row").filter(has_text=email)).to_contain_text("Nouvelle Recrue")

    with page_on(browser, ui_server) as newcomer:
        newcomer.goto(url)
        expect(newcomer.get_by_role("heading", level=1)).to_have_text("Bienvenue sur Socle IA")
        check_page(newcomer, "mot-de-passe-lien")
        _choose_password(newcomer, "trop court")
        expect(newcomer.get_by_role("alert")).to_contain_text("au moins 12 caractères")
        _choose_password(newcomer, PASSWORD, "une autre saisie bien longue")
        expect(newcomer.get_by_role("alert")).to_contain_text("différentes")
        _choose_password(newcomer, PASSWORD)
        expect(newcomer).to_have_url(re.compile(r"/ui/chat\?ok=mot-de-passe-choisi$"))
        expect(newcomer.get_by_role("status").filter(has_text="Votre mot de passe")).to_contain_text(
            "vous êtes connecté")
        newcomer.goto(url)  # once only
        expect(newcomer.get_by_role("alert")).to_contain_text("Ce lien ne fonctionne pas")
    with page_on(browser, ui_server) as later:
        sign_in(later, Account(0, email, PASSWORD))

    page.goto("/ui/connexion")  # no mail server: no forgotten-password page
    expect(page.get_by_role("link", name="Mot de passe oublié ?")).to_have_count(0)
    assert httpx.get(ui_server.url + "/ui/connexion/mot-de-passe-oublie").status_code == 404


def test_an_admin_makes_a_new_link_or_types_a_password(page: Page, browser: Browser, ui_server: Server,
                                                       admin_api: httpx.Client, account: Account) -> None:
    sign_in(page, new_account(ui_server, admin_api, role="admin"))
    page.goto(f"/ui/admin/utilisateurs/{account.id}")
    page.get_by_role("button", name="Créer un lien pour choisir son mot de passe").click()
    expect(page.get_by_role("status")).to_contain_text("Un nouveau lien est prêt")
    url = page.get_by_label(re.compile("^Nouveau mot de passe pour")).input_value()
    check_page(page, "admin-utilisateur-lien")
    page.get_by_label("Ou définir vous-même son mot de passe").fill("le mot de passe de l'admin")
    page.get_by_role("button", name="Définir le mot de passe").click()
    expect(page.get_by_role("status")).to_contain_text("Le mot de passe est défini")
    with page_on(browser, ui_server) as person:
        sign_in(person, Account(account.id, account.email, "le mot de passe de l'admin"))
        person.goto(url)  # the reset link still works: the person chooses their own
        expect(person.get_by_role("heading", level=1)).to_have_text("Choisir un nouveau mot de passe")
        _choose_password(person, "mon tout nouveau mot de passe")
        expect(person).to_have_url(re.compile(r"/ui/chat"))


def test_changing_ones_password_signs_out_the_other_sessions(page: Page, browser: Browser, ui_server: Server,
                                                            account: Account) -> None:
    sign_in(page, account)
    with page_on(browser, ui_server) as elsewhere:
        sign_in(elsewhere, account)
        page.goto("/ui/compte")
        page.get_by_role("link", name="Changer mon mot de passe").click()
        check_page(page, "mot-de-passe")
        page.get_by_label("Mot de passe actuel").fill("pas le bon mot de passe")
        page.get_by_label(re.compile(r"^Nouveau mot de passe")).fill("mon nouveau mot de passe")
        page.get_by_label("Confirmation du nouveau mot de passe").fill("mon nouveau mot de passe")
        page.get_by_role("button", name="Changer mon mot de passe").click()
        expect(page.get_by_role("alert")).to_contain_text("Le mot de passe actuel est incorrect")
        page.get_by_label("Mot de passe actuel").fill(account.password)
        page.get_by_label(re.compile(r"^Nouveau mot de passe")).fill("mon nouveau mot de passe")
        page.get_by_label("Confirmation du nouveau mot de passe").fill("mon nouveau mot de passe")
        page.get_by_role("button", name="Changer mon mot de passe").click()
        expect(page.get_by_role("status")).to_contain_text("Votre mot de passe est changé")
        elsewhere.goto("/ui/chat")
        expect(elsewhere).to_have_url(re.compile(r"/ui/connexion"))
    page.goto("/ui/chat")
    expect(page).to_have_url(re.compile(r"/ui/chat$"))  # this session stays


def test_an_import_is_previewed_with_its_errors_then_creates_accounts_and_links(
        page: Page, ui_server: Server, admin_api: httpx.Client) -> None:
    sign_in(page, new_account(ui_server, admin_api, role="admin"))
    tag = secrets.token_hex(4)
    good = (f"nom;email;rôle;groupes\nHélène Martin;helene-{tag}@ministere.gouv.fr;user;\n"
            f"Paul Durand;paul-{tag}@ministere.gouv.fr;;\n")
    page.goto("/ui/admin/utilisateurs")
    page.get_by_role("link", name="Importer des comptes depuis un fichier CSV").click()
    check_page(page, "admin-import")
    page.get_by_label("Fichier CSV des comptes").set_input_files(files=[{
        "name": "comptes.csv", "mimeType": "text/csv",
        "buffer": (good + "X;pas-une-adresse;chef;\n").encode()}])
    page.get_by_role("button", name="Voir l'aperçu").click()
    row = page.get_by_role("row").filter(has_text="pas-une-adresse")
    expect(row).to_contain_text("adresse électronique invalide")
    expect(row).to_contain_text("rôle inconnu : « chef »")
    expect(page.get_by_role("button", name=re.compile("Créer ces"))).to_have_count(0)
    check_page(page, "admin-import-erreurs")
    page.get_by_label("Fichier CSV des comptes").set_input_files(files=[{
        "name": "comptes.csv", "mimeType": "text/csv", "buffer": good.encode("cp1252")}])  # as Excel saves it
    page.get_by_role("button", name="Voir l'aperçu").click()
    page.get_by_role("button", name="Créer ces 2 comptes et leurs invitations").click()
    expect(page.get_by_role("status")).to_contain_text("2 comptes créés")
    expect(page.get_by_label(re.compile(f"Invitation pour Paul Durand \\(paul-{tag}"))).to_have_value(
        re.compile(r"/ui/mot-de-passe\?token="))
    check_page(page, "admin-import-fait")
    names = {u["email"]: u["name"] for u in admin_api.get("/users", params={"limit": 1000}).json()["data"]}
    assert names[f"helene-{tag}@ministere.gouv.fr"] == "Hélène Martin"  # its accents kept through the preview
    assert names[f"paul-{tag}@ministere.gouv.fr"] == "Paul Durand"


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    with smtp_server() as inbox:
        yield inbox


@pytest.fixture(scope="module")
def mail_server(tmp_path_factory: pytest.TempPathFactory, ui_catalogue: object, inbox: Inbox) -> Iterator[Server]:
    """A platform that sends its links by e-mail, to the SMTP server above."""
    server = start_server(tmp_path_factory.mktemp("mail-server"), config=ui_catalogue, extra_env={  # type: ignore[arg-type]
        **ENV, "SOCLE_SMTP_HOST": "127.0.0.1", "SOCLE_SMTP_PORT": str(inbox.port), "SOCLE_SMTP_TLS": "none",
        "SOCLE_SMTP_SENDER": "Socle IA <ne-pas-repondre@ministere.gouv.fr>", "SOCLE_PUBLIC_URL": PUBLIC_URL})
    yield server
    stop(server.process)


def test_a_forgotten_password_is_reset_through_the_e_mailed_link(browser: Browser, mail_server: Server,
                                                                 inbox: Inbox) -> None:
    with api_of(mail_server) as api:
        account = new_account(mail_server, api)
    with page_on(browser, mail_server) as page:
        page.goto("/ui/connexion")
        page.get_by_role("link", name="Mot de passe oublié ?").click()
        check_page(page, "mot-de-passe-oublie")
        page.get_by_label("Adresse électronique").fill(f"inconnu-{secrets.token_hex(3)}@ministere.gouv.fr")
        page.get_by_role("button", name="Recevoir un lien").click()
        unknown = page.get_by_role("status").inner_text()
        before = len(inbox.messages)
        page.goto("/ui/connexion/mot-de-passe-oublie")
        page.get_by_label("Adresse électronique").fill(account.email.upper())
        page.get_by_role("button", name="Recevoir un lien").click()
        assert page.get_by_role("status").inner_text() == unknown  # the same answer either way
        inbox.wait_for(before + 1)
        assert len(inbox.messages) == before + 1 and inbox.messages[-1]["To"] == account.email
        token = inbox.link(PUBLIC_URL)
        page.goto(f"/ui/mot-de-passe?token={token}")
        _choose_password(page, "retrouvé grâce au courriel")
        expect(page).to_have_url(re.compile(r"/ui/chat\?ok=mot-de-passe-choisi$"))


def test_an_invitation_is_e_mailed_too(browser: Browser, mail_server: Server, inbox: Inbox) -> None:
    with api_of(mail_server) as api, page_on(browser, mail_server) as page:
        sign_in(page, new_account(mail_server, api, role="admin"))
        email = f"invite-{secrets.token_hex(4)}@ministere.gouv.fr"
        shown = _invite(page, email)
        expect(page.get_by_text("Envoyé aussi par courriel.")).to_be_visible()
        assert inbox.messages[-1]["To"] == email and inbox.messages[-1]["Subject"] == "Votre compte Socle IA"
        mailed = PUBLIC_URL + "/ui/mot-de-passe?token=" + inbox.link(PUBLIC_URL)
        assert urlsplit(mailed).query == urlsplit(shown).query


def test_the_account_forms_need_their_tokens(page: Page, browser: Browser, ui_server: Server,
                                            admin_api: httpx.Client, account: Account) -> None:
    """Session CSRF for the admin's and the account's forms; for a link's form (no session yet), its own token
    and cookie, as the sign-in form: another site cannot make a browser choose a password for an account."""
    sign_in(page, new_account(ui_server, admin_api, role="admin"))
    url = _invite(page, f"csrf-{secrets.token_hex(4)}@ministere.gouv.fr")
    request = page.request  # the browser's cookies: only the token is missing
    refused = [
        request.post(f"/ui/admin/utilisateurs/{account.id}/lien"),
        request.post(f"/ui/admin/utilisateurs/{account.id}/mot-de-passe", form={"password": "x" * 20}),
        request.post("/ui/admin/utilisateurs/import/confirmer", form={"content": "email\nx@ministere.gouv.fr\n"}),
        request.post("/ui/compte/mot-de-passe", form={"current": PASSWORD, "password": "y" * 20,
                                                      "confirmation": "y" * 20}),
    ]
    assert [r.status for r in refused] == [403] * len(refused)
    token = urlsplit(url).query.removeprefix("token=")
    forged_post = httpx.post(ui_server.url + "/ui/mot-de-passe", data={
        "token": token, "password": "choisi par un autre site", "confirmation": "choisi par un autre site"})
    assert forged_post.status_code == 403 and "socle_session" not in forged_post.cookies
    with page_on(browser, ui_server) as newcomer:  # the link still works
        newcomer.goto(url)
        _choose_password(newcomer, PASSWORD)
        expect(newcomer).to_have_url(re.compile(r"/ui/chat"))
