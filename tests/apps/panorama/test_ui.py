"""Panorama IA in a real browser (Debian's Chromium): the catalogue by family with its filters, a solution's
page, search by need, declaring a need, the census for editors, and a call for projects from submission to
a selected product's indicators. Every page is screenshotted under the test's temporary directory and checked
with axe-core: no serious or critical violation."""
from __future__ import annotations

import re
import secrets
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.support.servers import Server
from tests.ui.conftest import Account, check_page, new_account, page_on, sign_in

SLOW = 180_000  # ms: the first search embeds the catalogue on a busy machine


def check(page: Page, shots: Path, name: str) -> None:
    check_page(page, name, shots)


def _account(server: Server, admin_api: httpx.Client, *permissions: str) -> Account:
    role = "user"
    if permissions:
        role = admin_api.post("/roles", json={"name": f"panorama-{secrets.token_hex(3)}",
                                              "permissions": ["panorama:read", *permissions]}).json()["name"]
    return new_account(server, admin_api, role=role)


def test_browse_search_and_declare_a_need(page: Page, ui_server: Server, admin_api: httpx.Client,
                                          tmp_path: Path) -> None:
    sign_in(page, _account(ui_server, admin_api))
    page.goto("/ui/panorama")
    expect(page.get_by_role("heading", level=1)).to_have_text("Panorama des solutions d'IA")
    expect(page.get_by_text("illustratif")).to_be_visible()
    expect(page.get_by_role("heading", name="Parole et transcription")).to_be_visible()
    check(page, tmp_path, "panorama-catalogue")

    page.get_by_label("Famille", exact=True).select_option("parole")
    page.get_by_label("Licence").select_option("oui")
    page.get_by_role("button", name="Filtrer").click()
    expect(page).to_have_url(re.compile(r"famille=parole.*libre=oui"))
    cards = page.locator(".fr-card__title")
    expect(cards.first).to_be_visible()
    assert page.locator("h3[id^=famille-]").all_inner_texts() == ["Parole et transcription"]
    check(page, tmp_path, "panorama-filtre")

    page.get_by_role("link", name="Lecture Vocale").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Lecture Vocale")
    expect(page.get_by_text("Conformité déclarée")).to_be_visible()
    check(page, tmp_path, "panorama-solution")

    page.get_by_role("link", name="Recherche par besoin").click()
    page.get_by_label("Votre besoin").fill("Je cherche un outil pour résumer des comptes rendus de réunion")
    page.get_by_role("button", name="Rechercher").click(timeout=SLOW)
    first = page.locator(".fr-card__desc").first
    expect(first).to_contain_text("Assistants de rédaction et de synthèse", timeout=SLOW)
    check(page, tmp_path, "panorama-recherche")

    page.get_by_role("link", name="Déclarer un besoin").click()
    page.get_by_label("Administration").fill("Préfecture de la Somme")
    page.get_by_label("Le besoin en une phrase").fill("Transcrire les entretiens")
    page.get_by_label("Irritant").fill("Nous retranscrivons à la main les entretiens enregistrés.")
    page.get_by_label("Qui le subit ?").fill("Les agents du bureau des étrangers")
    page.get_by_role("button", name="Déclarer le besoin").click(timeout=SLOW)
    expect(page.get_by_role("heading", level=1)).to_have_text("Transcrire les entretiens")
    expect(page.get_by_role("cell", name="Parole et transcription")).to_be_visible()
    expect(page.locator(".fr-card__title").first).to_be_visible()
    check(page, tmp_path, "panorama-besoin")
    page.get_by_role("link", name="Déclarer un besoin").click()
    expect(page.get_by_role("link", name="Transcrire les entretiens")).to_be_visible()
    page.get_by_role("button", name="Déclarer le besoin").click()  # empty: the browser's own check keeps it
    expect(page).to_have_url(re.compile(r"/ui/panorama/besoins$"))
    check(page, tmp_path, "panorama-besoins")
    # The census is for editors.
    assert page.goto("/ui/panorama/recensement").status == 403  # type: ignore[union-attr]


def test_editors_census_and_a_call_for_projects(browser: Browser, page: Page, ui_server: Server,
                                                admin_api: httpx.Client, tmp_path: Path) -> None:
    editor = _account(ui_server, admin_api, "panorama:edit")
    sign_in(page, editor)
    page.goto("/ui/panorama/solutions/nouvelle")
    check(page, tmp_path, "panorama-formulaire")
    page.get_by_label("Nom de la solution").fill("Greffe Numérique")
    page.get_by_label("Famille fonctionnelle").select_option("parole")
    page.get_by_label("Éditeur").fill("Atelier test")
    page.get_by_label("Description").fill("Transcrit les audiences du greffe.")
    page.locator("label[for=champ-open_source]").click()  # the DSFR draws the box over the input
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Greffe Numérique")
    expect(page.get_by_text("C'est enregistré.")).to_be_visible()

    page.goto("/ui/panorama/recensement")
    expect(page.get_by_role("heading", level=1)).to_have_text("Recensement des besoins")
    expect(page.get_by_role("table", name="Besoins par famille")).to_be_visible()
    check(page, tmp_path, "panorama-recensement")
    with page.expect_download() as download:
        page.get_by_role("link", name="Exporter les besoins (CSV)").click()
    assert download.value.suggested_filename == "besoins.csv"

    page.goto("/ui/panorama/appels")
    page.get_by_label("Titre").fill("Appel IA 2027")
    page.get_by_role("button", name="Ouvrir l'appel").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Appel IA 2027")
    call_url = page.url.split("?")[0]

    team, juror = _account(ui_server, admin_api), _account(ui_server, admin_api, "panorama:jury")
    with page_on(browser, ui_server) as as_team:
        sign_in(as_team, team)
        as_team.goto(call_url)
        check(as_team, tmp_path, "panorama-appel")
        as_team.get_by_label("Administration").fill("Direction départementale")
        as_team.get_by_label("Titre du projet").fill("Tri des courriels")
        as_team.locator("#projet-summary").fill("Trier les courriels des usagers par motif.")
        as_team.get_by_role("button", name="Déposer le projet").click()
        expect(as_team.get_by_role("heading", level=1)).to_have_text("Tri des courriels")
        project_url = as_team.url.split("?")[0]

    with page_on(browser, ui_server) as as_juror:
        sign_in(as_juror, juror)
        as_juror.goto(project_url)
        for select in as_juror.locator("select[name^=note_]").all():
            select.select_option("4")
        as_juror.get_by_label("Commentaire").fill("Bon projet.")
        as_juror.get_by_role("button", name="Enregistrer ma notation").click()
        expect(as_juror.get_by_text("Votre notation est enregistrée.")).to_be_visible()
        check(as_juror, tmp_path, "panorama-notation")

    page.goto(call_url)
    ranking = page.get_by_role("table", name="Classement des projets")
    expect(ranking.get_by_role("row").nth(1)).to_contain_text("28")
    page.goto(project_url)
    page.get_by_label("Décision").select_option("selected")
    page.get_by_role("button", name="Enregistrer la décision").click()
    page.get_by_label("Nom de l'indicateur").first.fill("Courriels triés")
    page.get_by_role("button", name="Définir l'indicateur").first.click()
    page.get_by_label("Date de la mesure").first.fill("2027-06-30")
    page.get_by_label("Valeur").fill("1 250,5")
    page.get_by_role("button", name="Ajouter la valeur").first.click()
    expect(page.get_by_role("table", name="Valeurs de l'indicateur Courriels triés")).to_contain_text("1\u202f250,5")
    check(page, tmp_path, "panorama-projet")

    # The administrator's audit trail names these actions in the app's words, and filters on the app.
    page.context.clear_cookies()
    sign_in(page, new_account(ui_server, admin_api, role="admin"))
    page.goto("/ui/admin/audit")
    expect(page.get_by_label("Action").locator("option[value='panorama.']")).to_have_text("Panorama IA")
    page.get_by_label("Action").select_option("panorama.")
    page.get_by_role("button", name="Filtrer").click()
    expect(page).to_have_url(re.compile(r"action=panorama\.&"))
    by_editor = page.locator("tbody tr").filter(has_text=editor.email)
    created = by_editor.filter(has_text="Solution ajoutée au panorama").filter(has_text="greffe-numerique")
    expect(created).to_have_count(1)
    expect(by_editor.filter(has_text="Appel à projets ouvert")).to_have_count(1)
    expect(by_editor.filter(has_text="Projet retenu")).to_have_count(1)
    expect(by_editor.filter(has_text="Valeur d'un indicateur d'impact enregistrée")).to_have_count(1)
    expect(page.locator("tbody tr").filter(has_text=juror.email)).to_contain_text("Notation du jury enregistrée")
    expect(page.locator("tbody tr").filter(has_text="Connexion")).to_have_count(0)
    check(page, tmp_path, "panorama-journal-audit")
