"""The site as an administration runs it: its settings changed from the browser (welcome screen, default model,
legal pages, accessibility level), the pages every State site carries, the display settings, the welcome
screen's suggestions, and the French 404 page. Each new page is checked at a computer's and a phone's size."""
from __future__ import annotations

import re
import secrets

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.support.servers import Server
from tests.ui.conftest import Account, check_page, http_sign_in, new_account, page_on, sign_in

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def check_both_sizes(page: Page, name: str) -> None:
    check_page(page, name)
    page.set_viewport_size(PHONE)
    check_page(page, f"{name}-mobile")
    page.set_viewport_size(DESKTOP)


def test_an_administrator_sets_the_site_up_from_the_browser(page: Page, browser: Browser, ui_server: Server,
                                                           admin_api: httpx.Client, account: Account) -> None:
    admin = new_account(ui_server, admin_api, role="admin")
    sign_in(page, admin)
    page.goto("/ui/admin")
    page.get_by_role("link", name="Paramètres du site").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Paramètres du site")
    check_both_sizes(page, "admin-parametres")
    page.get_by_label("Texte d'accueil").fill("Bienvenue sur l'assistant du **ministère**.")
    page.get_by_label("Suggestions").fill("Résume cette note :\nRédige une réponse à ce courrier :")
    page.get_by_label("Modèle par défaut").select_option("remote-endless")
    page.get_by_role("textbox", name=re.compile("^Administration")).fill("Ministère de l'Exemple")
    page.get_by_label("Conformité à l'accessibilité").select_option("partial")
    page.get_by_label("Mentions légales").fill("## Éditeur\n\nDirection du numérique du ministère de l'Exemple.")
    page.get_by_role("button", name="Enregistrer les paramètres").click()
    expect(page.get_by_role("status")).to_contain_text("Les paramètres sont enregistrés")
    expect(page.get_by_label("Modèle par défaut")).to_have_value("remote-endless")

    page.get_by_label("Suggestions").fill("\n".join(f"Suggestion {n}" for n in range(7)))
    page.get_by_role("button", name="Enregistrer les paramètres").click()
    expect(page.get_by_role("alert")).to_contain_text("6 suggestions au plus")

    page.goto("/ui/admin/audit")
    expect(page.get_by_role("table")).to_contain_text("Paramètres du site modifiés")

    try:
        sign_in(page, account)  # a plain user: the welcome screen, the default model, the footer
        welcome = page.get_by_role("region", name="Bienvenue")
        expect(welcome).to_contain_text("Bienvenue sur l'assistant du ministère.")
        expect(welcome.locator("strong")).to_have_text("ministère")  # Markdown, rendered
        expect(page.locator("#model")).to_have_value("remote-endless")
        welcome.get_by_role("button", name="Rédige une réponse à ce courrier :").click()
        expect(page.get_by_label(re.compile("^Votre message"))).to_have_value("Rédige une réponse à ce courrier :")
        expect(page.get_by_label(re.compile("^Votre message"))).to_be_focused()
        check_both_sizes(page, "chat-accueil")
        footer = page.get_by_role("contentinfo")
        expect(footer.get_by_role("link", name="Accessibilité : partiellement conforme")).to_be_visible()

        with page_on(browser, ui_server) as visitor:  # not signed in: the legal pages are open to all
            visitor.goto("/ui/chat")
            expect(visitor).to_have_url(re.compile("/ui/connexion"))
            visitor.get_by_role("contentinfo").get_by_role("link", name="Mentions légales").click()
            expect(visitor.get_by_role("heading", level=2)).to_have_text("Éditeur")
            expect(visitor.locator("main")).to_contain_text("Direction du numérique du ministère de l'Exemple.")
            check_both_sizes(visitor, "mentions-legales")
            for link, heading in [("Données personnelles", "Responsable du traitement"),
                                  ("Gestion des cookies", "Les cookies de ce site")]:
                visitor.get_by_role("contentinfo").get_by_role("link", name=link).click()
                expect(visitor.get_by_role("heading", level=1)).to_have_text(link)
                expect(visitor.get_by_role("heading", name=heading)).to_be_visible()
                check_both_sizes(visitor, link.lower().replace(" ", "-").replace("é", "e"))
            visitor.get_by_role("contentinfo").get_by_role("link", name=re.compile("^Accessibilité")).click()
            expect(visitor.get_by_role("heading", level=1)).to_have_text("Déclaration d'accessibilité")
            main = visitor.locator("main")
            expect(main).to_contain_text("Ministère de l'Exemple s'engage à rendre ses sites")
            expect(main).to_contain_text("Socle IA est partiellement conforme avec le référentiel général")
            for heading in ("État de conformité", "Résultats des tests", "Contenus non accessibles",
                            "Établissement de cette déclaration d'accessibilité", "Retour d'information et contact",
                            "Voies de recours"):
                expect(visitor.get_by_role("heading", name=heading, exact=True)).to_be_visible()
            check_both_sizes(visitor, "accessibilite")
    finally:
        sign_in(page, admin)  # the other tests expect the first model first
        page.goto("/ui/admin/parametres")
        page.get_by_label("Modèle par défaut").select_option("")
        page.get_by_role("button", name="Enregistrer les paramètres").click()
        expect(page.get_by_role("status")).to_contain_text("Les paramètres sont enregistrés")


def test_quota_presets_and_retention_are_set_from_the_settings_page(page: Page, ui_server: Server,
                                                                    admin_api: httpx.Client) -> None:
    admin = new_account(ui_server, admin_api, role="admin")
    sign_in(page, admin)
    page.goto("/ui/admin/parametres")
    page.locator("#preset_agent_requests_per_minute").fill("45")
    page.locator("#retention_conversations_days").fill("90")
    page.get_by_role("button", name="Enregistrer les paramètres").click()
    expect(page.get_by_role("status")).to_contain_text("Les paramètres sont enregistrés")
    try:
        expect(page.locator("#preset_agent_requests_per_minute")).to_have_value("45")
        page.goto("/ui/admin/quotas")  # the quota form offers the new amount
        expect(page.locator("[data-quota-preset]").first).to_have_attribute(
            "data-quota-preset", re.compile(r'"requests_per_minute": 45\b'))
        page.goto("/ui/donnees-personnelles")  # the personal-data page says the period in force
        expect(page.locator("main")).to_contain_text("90 jours après leur dernière")
        page.goto("/ui/admin/conservation")
        expect(page.locator("main")).to_contain_text("90 jours")

        page.goto("/ui/admin/parametres")
        page.locator("#retention_audit_days").fill("100")  # the trail must outlive what it proves
        page.get_by_role("button", name="Enregistrer les paramètres").click()
        expect(page.get_by_role("alert")).to_contain_text("entre 365 et 3650 jours")
        page.goto("/ui/admin/audit")
        expect(page.get_by_role("table")).to_contain_text("Durées de conservation modifiées")
        expect(page.get_by_role("table")).to_contain_text("Modèles de quotas modifiés")
    finally:  # the other tests expect the code's presets and the environment's periods
        page.goto("/ui/admin/parametres")
        page.locator("#preset_agent_requests_per_minute").fill("30")
        page.locator("#retention_conversations_days").fill("365")
        page.locator("#retention_audit_days").fill("1825")
        page.get_by_role("button", name="Enregistrer les paramètres").click()
        expect(page.get_by_role("status")).to_contain_text("Les paramètres sont enregistrés")


def test_the_site_settings_need_their_own_permission(ui_server: Server, admin_api: httpx.Client) -> None:
    """``site:admin``, declared with the other permissions: not only the administrators' ``*``."""
    role = f"editeur-{secrets.token_hex(3)}"
    assert admin_api.post("/roles", json={"name": role, "permissions": ["site:admin"]}).status_code == 201
    for account, status in ((new_account(ui_server, admin_api, role=role), 200), (new_account(ui_server, admin_api), 403)):
        with httpx.Client(base_url=ui_server.url, cookies={"socle_session": http_sign_in(ui_server, account)}) as http:
            assert http.get("/ui/admin/parametres").status_code == status


def test_the_display_settings_switch_to_the_dark_theme(page: Page, account: Account) -> None:
    sign_in(page, account)
    page.get_by_role("button", name="Paramètres d'affichage").click()
    dialog = page.get_by_role("dialog", name="Paramètres d'affichage")
    expect(dialog).to_be_visible()
    check_page(page, "parametres-affichage")
    dialog.get_by_text("Thème sombre").click()
    expect(page.locator("html")).to_have_attribute("data-fr-theme", "dark")
    dialog.get_by_role("button", name="Fermer").click()
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-fr-theme", "dark")  # kept by the browser
    check_page(page, "chat-sombre")


def test_an_unknown_address_is_the_french_404_page(page: Page, account: Account) -> None:
    sign_in(page, account)
    response = page.goto("/ui/cette-page-n-existe-pas")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Page non trouvée")
    expect(page.get_by_role("alert")).to_contain_text("La page que vous cherchez est introuvable")
    expect(page.locator(".socle-account").first).to_have_text(account.email)  # still shown as signed in
    check_both_sizes(page, "erreur-404")
    page.get_by_role("link", name="Page d'accueil").click()
    expect(page).to_have_url("/ui/chat")
