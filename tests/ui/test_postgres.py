"""The main browser flow on PostgreSQL (+ pgvector) rather than SQLite: signing in (with a password, throttled,
sessions with their idle time), chatting, a document uploaded and indexed, a question answered from it with
its source, the usage export, signing out."""
from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.documents import pdf
from tests.support.servers import Server
from tests.ui.conftest import (
    answered,
    api_of,
    ask,
    check_page,
    create_collection,
    new_account,
    page_on,
    sign_in,
    upload_ready,
)


@pytest.fixture(scope="module")
def pg_api(ui_postgres_server: Server) -> Iterator[httpx.Client]:
    with api_of(ui_postgres_server) as api:
        yield api


@pytest.fixture
def pg_page(browser: Browser, ui_postgres_server: Server) -> Iterator[Page]:
    with page_on(browser, ui_postgres_server) as page:
        yield page


def test_sign_in_chat_documents_and_sign_out_on_postgres(pg_page: Page, ui_postgres_server: Server,
                                                          pg_api: httpx.Client, tmp_path: Path) -> None:
    page, account = pg_page, new_account(ui_postgres_server, pg_api)
    page.goto("/ui/connexion")
    page.get_by_label("Adresse électronique").fill(account.email)
    page.get_by_label("Mot de passe").fill("pas le bon mot de passe")
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("alert")).to_contain_text("Adresse électronique ou mot de passe incorrect")
    sign_in(page, account)
    expect(page.locator(".socle-account").first).to_have_text(account.email)

    ask(page, "hostile", "Bonjour")
    answered(page)
    check_page(page, "postgres-chat")

    collection_id = create_collection(page, "Guides des titres")
    upload_ready(page, collection_id, "passeport.pdf", pdf(tmp_path / "passeport.pdf").read_bytes())
    page.goto(f"/ui/documents/{collection_id}")
    rows = page.locator("table").filter(has_text="Documents de la collection").locator("tbody tr")
    expect(rows.filter(has_text="passeport.pdf")).to_contain_text("Prêt")
    check_page(page, "postgres-collection")

    page.get_by_role("link", name="Interroger mes documents").click()
    ask(page, "hostile", "Quel est le délai de fabrication d'un passeport ?")
    source = page.locator(".socle-source").filter(has_text="passeport.pdf").first
    expect(source).to_be_visible(timeout=60_000)
    expect(source.locator("blockquote")).to_contain_text("trois semaines")  # found by PostgreSQL's search
    answered(page)

    deadline = time.monotonic() + 20  # usage rows are written in batches
    while True:
        rows_csv = list(csv.DictReader(io.StringIO(page.request.get("/ui/consommation.csv?periode=7").text())))
        if len(rows_csv) >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert rows_csv and {r["utilisateur"] for r in rows_csv} == {account.email}

    token = next(c["value"] for c in page.context.cookies() if c["name"] == "socle_session")
    page.get_by_role("button", name="Se déconnecter").click()
    expect(page).to_have_url("/ui/connexion?ok=deconnecte")
    assert httpx.get(ui_postgres_server.url + "/ui/chat", cookies={"socle_session": token}).status_code == 303
