"""Models managed from the browser: an administrator adds a model and its backend, tests the connection, and an
agent uses the model at once, on a server of two worker processes (each applies the change without a restart)."""
from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from playwright.sync_api import Browser, Locator, Page, expect

from tests.support.servers import Server, start_server, stop
from tests.ui.conftest import ENV, answered, api_of, ask, check_page, new_account, page_on, sign_in

CATALOGUE = """
models:
  - {{id: remote-chat, type: chat, backends: [{{type: openai, url: "{mock}/v1", model: mock-chat}}]}}
"""


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory, mock_backend: str) -> Iterator[Server]:
    """Two worker processes, remote models only (nothing to load): each polls the catalogue's revision."""
    directory = tmp_path_factory.mktemp("two-workers")
    config = directory / "models.yaml"
    config.write_text(CATALOGUE.format(mock=mock_backend))
    env = {**ENV, "SOCLE_WORKERS": "2", "SOCLE_CATALOGUE_REFRESH_S": "0.5",
           "SOCLE_ENCRYPTION_KEYS": Fernet.generate_key().decode()}
    server = start_server(directory / "data", config=config, extra_env=env)
    yield server
    stop(server.process)


def _field(page: Page, label: str) -> Locator:
    """A text field by the start of its label (the hints follow it)."""
    return page.get_by_role("textbox", name=re.compile("^" + re.escape(label)))


def _every_worker_answers(server: Server, model: str, *, status: int, within_s: float = 15) -> None:
    """Twelve calls in a row on new connections (spread over both workers) all get ``status``."""
    deadline = time.monotonic() + within_s
    while True:
        codes = []
        for _ in range(12):
            with api_of(server) as http:
                codes.append(http.post("/chat/completions", headers={"connection": "close"}, json={
                    "model": model, "messages": [{"role": "user", "content": "Bonjour"}]}).status_code)
        if set(codes) == {status}:
            return
        assert time.monotonic() < deadline, codes
        time.sleep(0.5)


def test_admin_adds_tests_and_withdraws_a_model_without_a_restart(browser: Browser, two_workers: Server,
                                                                  mock_backend: str, tmp_path: Path) -> None:
    with api_of(two_workers) as admin_api:
        admin = new_account(two_workers, admin_api, role="admin")
        agent = new_account(two_workers, admin_api)
    model = f"mistral-{secrets.token_hex(3)}"
    with page_on(browser, two_workers) as page:
        sign_in(page, admin)
        page.goto("/ui/admin/modeles")
        expect(page.get_by_role("table", name=re.compile("^remote-chat"))).to_contain_text(
            "Déclaré dans le fichier de configuration")
        page.get_by_role("link", name="Ajouter un modèle").click()
        check_page(page, "admin-modele-nouveau")
        _field(page, "Identifiant").fill(model)
        page.get_by_label("Usage", exact=True).select_option("chat")
        _field(page, "Adresse du serveur").fill(f"{mock_backend}/v1")
        _field(page, "Nom du modèle sur le serveur").fill("mock-chat")
        page.get_by_label("Clé d'accès au serveur").fill("sk-cle-tres-secrete")
        _field(page, "Description").fill("Modèle de Mistral AI servi par le ministère, bon en français.")
        _field(page, "Usage prévu").fill("Rédiger et résumer des textes administratifs")
        _field(page, "Langues").fill("fr, en")
        _field(page, "Fournisseur").fill("Mistral AI")
        _field(page, "Licence").fill("Apache 2.0")
        _field(page, "Où il fonctionne").fill("Serveurs du ministère, à Paris")
        page.get_by_role("button", name="Ajouter le modèle").click()
        expect(page.get_by_role("status").first).to_contain_text("Le modèle a été ajouté")
        expect(page.get_by_role("table", name=re.compile("Les serveurs du modèle"))).to_contain_text("Enregistrée")
        assert "sk-cle-tres-secrete" not in page.content()  # never shown again

        page.get_by_role("button", name="Tester la connexion").click()
        result = page.locator("#resultat-test")
        expect(result).to_contain_text(f"Serveur {model}#0 : il a répondu en")
        expect(result).to_contain_text("Bonjour, ceci est une réponse simulée.")
        check_page(page, "admin-modele")

        _every_worker_answers(two_workers, model, status=200)  # both workers serve it: no restart

        with page_on(browser, two_workers) as chat:
            sign_in(chat, agent)
            chat.goto("/ui/chat")
            card = chat.locator(f'.socle-model-card[data-model="{model}"]')
            ask(chat, model, "Bonjour")
            expect(card).to_be_visible()
            expect(card).to_contain_text("Mistral AI")
            expect(card).to_contain_text("Serveurs du ministère, à Paris")
            expect(answered(chat).locator(".socle-message__body")).to_contain_text("tok0")

        with page.expect_download() as download:
            page.goto("/ui/admin/modeles")
            page.get_by_role("button", name="Exporter le catalogue (fichier YAML)").click()
        exported = Path(download.value.path()).read_text()
        assert f"id: {model}" in exported and "sk-cle-tres-secrete" not in exported

        page.get_by_role("link", name=re.compile(f"le modèle {model}$")).click()
        page.get_by_role("button", name="Mettre hors service").click()
        expect(page.get_by_role("status").first).to_contain_text("Le modèle est hors service")
        _every_worker_answers(two_workers, model, status=404)
        with api_of(two_workers) as admin_api:
            audit = admin_api.get("/audit", params={"action": "model.tested"}).json()["data"]
            assert [entry["target"]["id"] for entry in audit] == [model]
            # The same catalogue through the admin API: no key in it, the model back in service, then removed.
            listed = {m["model"]: m for m in admin_api.get("/catalogue/models").json()["data"]}
            assert listed["remote-chat"]["origin"] == "yaml" and listed[model]["enabled"] is False
            assert listed[model]["backends"][0]["has_key"] is True and "sk-cle" not in str(listed)
            back = admin_api.patch(f"/catalogue/models/{listed[model]['id']}", json={"enabled": True})
            assert back.status_code == 200 and back.json()["enabled"] is True
            assert admin_api.delete(f"/catalogue/models/{listed['remote-chat']['id']}").status_code == 409  # the file's
            assert admin_api.delete(f"/catalogue/models/{listed[model]['id']}").status_code == 204
            assert "sk-cle" not in admin_api.get("/catalogue/export").text
