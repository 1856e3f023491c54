"""My usage and the administrators' dashboard: charts with their tables, the active-users figure, the CSV."""
from __future__ import annotations

import csv
import io
import time

import httpx
from playwright.sync_api import Page, expect

from socle.ui.routes.usage import PLATFORM_ITSELF
from tests.support.servers import Server
from tests.ui.conftest import Account, answered, ask, check_page, new_account, sign_in


def _reload_until(page: Page, url: str, text: str, *, timeout_s: float = 20) -> None:
    """Usage rows are written in batches (every second): reload until the page shows them."""
    deadline = time.monotonic() + timeout_s
    while True:
        page.goto(url)
        if text in page.content() or time.monotonic() > deadline:
            return
        time.sleep(0.5)


def test_my_usage_shows_a_chart_and_its_table_after_a_chat(page: Page, account: Account,
                                                           admin_api: httpx.Client) -> None:
    quota = admin_api.post("/quotas", json={"scope": "user", "subject": str(account.id), "requests_per_day": 1500,
                                            "budget_tokens": 2_000_000}).json()["id"]
    sign_in(page, account)
    page.goto("/ui/consommation")  # before any call: all of it is left
    allowance = page.get_by_role("table", name="Ce qu'il vous reste, quota par quota")
    expect(allowance.get_by_role("row").filter(has_text="Requêtes sur les dernières 24 heures")).to_contain_text(
        "1\u202f500 0 1\u202f500")
    page.goto("/ui/chat")
    ask(page, "hostile", "Bonjour")
    answered(page)
    page.get_by_role("link", name="Ma consommation").click()
    _reload_until(page, "/ui/consommation", "<th scope=\"row\">hostile</th>")
    admin_api.delete(f"/quotas/{quota}")  # quotas bind calls: leave none behind
    # The call is counted, nothing more: reading what is left consumes nothing.
    expect(allowance.get_by_role("row").filter(has_text="Requêtes sur les dernières 24 heures")).to_contain_text(
        "1\u202f500 1 1\u202f499")
    expect(allowance.get_by_role("row").filter(has_text="Budget en jetons, ce mois-ci")).to_contain_text("2\u202f000\u202f000")
    chart = page.get_by_role("img", name="Requêtes par jour et par modèle")
    expect(chart).to_be_visible()
    table = page.get_by_role("table", name="Requêtes par jour et par modèle : les données")
    expect(table.get_by_role("row").filter(has_text="hostile")).to_contain_text("1")
    expect(page.locator("#par-modele")).to_contain_text("hostile")
    check_page(page, "consommation")

    download = page.request.get("/ui/consommation.csv?periode=7")
    assert download.status == 200 and download.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.text())))
    assert [(r["modele"], r["utilisateur"], r["requetes"]) for r in rows] == [("hostile", account.email, "1")]


def test_the_admin_pages_are_refused_to_others(page: Page, account: Account) -> None:
    sign_in(page, account)
    expect(page.get_by_role("link", name="Administration")).to_have_count(0)
    for path in ("/ui/admin", "/ui/admin/utilisateurs", "/ui/admin/groupes", "/ui/admin/quotas",
                 "/ui/admin/modeles"):
        response = page.goto(path)
        assert response is not None and response.status in (403, 404), path
    # One's own usage only, even when asking for the platform's.
    rows = list(csv.DictReader(io.StringIO(page.request.get("/ui/consommation.csv?perimetre=plateforme").text())))
    assert {r["utilisateur"] for r in rows} <= {account.email}


def test_the_admin_sees_the_platforms_usage_and_exports_it(page: Page, ui_server: Server,
                                                           admin_api: httpx.Client) -> None:
    user = new_account(ui_server, admin_api)
    sign_in(page, user)
    ask(page, "hostile", "Bonjour")
    answered(page)
    page.context.clear_cookies()
    admin = new_account(ui_server, admin_api, role="admin")
    sign_in(page, admin)
    page.get_by_role("link", name="Administration").click()
    expect(page).to_have_url("/ui/admin")
    _reload_until(page, "/ui/admin", "<th scope=\"row\">hostile</th>")
    expect(page.get_by_role("img", name="Utilisateurs actifs par jour")).to_be_visible()
    expect(page.get_by_role("img", name="Requêtes par jour et par modèle")).to_be_visible()
    active = int(page.locator("#actifs-periode").inner_text().replace("\u202f", ""))
    assert active >= 1
    days = page.get_by_role("table", name="Utilisateurs actifs par jour : les données")
    expect(days.get_by_role("row")).not_to_have_count(1)
    check_page(page, "tableau-de-bord")

    with page.expect_download() as waiting:
        page.get_by_role("link", name="Exporter la consommation de la plateforme").click()
    download = waiting.value
    assert download.suggested_filename.endswith(".csv")
    text = open(download.path(), encoding="utf-8").read()
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0][:4] == ["jour", "modele", "utilisateur", "requetes"]
    assert any(row[1] == "hostile" and row[2] == user.email for row in lines[1:])  # people, not numbers
    named = [row[2] for row in lines[1:] if "@" not in row[2]]  # documents' embeddings: the platform's own calls
    assert set(named) <= {PLATFORM_ITSELF}, named
