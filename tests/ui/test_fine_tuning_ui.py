"""Affiner un modèle, in a real browser against a running server: a spreadsheet with a bad line gets the French error
naming that line; a good one gets its estimate, launches a tiny training of the embedded model, whose page follows
the losses and the events, then tries the new model beside its base and shares it with a group. Without the
training packages, the page says fine-tuning is unavailable, and why, in French."""
from __future__ import annotations

import io
import json
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openpyxl import Workbook
from playwright.sync_api import Browser, Page, expect

from tests.support.servers import SOCLE, Server, start_server, stop
from tests.ui.conftest import ENV, PASSWORD, Account, check_page, page_on, sign_in

QUESTIONS = [("Bonjour", "Bonjour ! Que puis-je pour vous ?"), ("Horaires ?", "La mairie ouvre de 9 h à 17 h."),
             ("Adresse ?", "1 place de la mairie."), ("Au revoir", "Au revoir et bonne journée.")]


def _csv(rows: list[tuple[str, str]]) -> bytes:
    return ("question;réponse attendue\n" + "".join(f"{q};{a}\n" for q, a in rows)).encode("utf-8")


def _member_of(server: Server, admin_api: httpx.Client, group_id: int) -> Account:
    """A user with a password, member of the group."""
    email = f"agent-{secrets.token_hex(4)}@ministere.gouv.fr"
    user = admin_api.post("/users", json={"email": email, "name": "Agent", "role": "user"}).json()
    assert admin_api.put(f"/groups/{group_id}/members/{user['id']}").status_code == 200
    done = subprocess.run([str(SOCLE), "users", "set-password", email, "--password-stdin"], input=PASSWORD + "\n",
                          env=server.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return Account(user["id"], email, PASSWORD)


def _new_group(admin_api: httpx.Client, name: str) -> int:
    return int(admin_api.post("/groups", json={"name": name}).json()["id"])


def _models_of(server: Server, admin_api: httpx.Client, account: Account) -> list[str]:
    """The models a person is offered, through the API with a key of theirs."""
    key = admin_api.post("/keys", json={"name": "essai", "user_id": account.id}).json()["key"]
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        return [model["id"] for model in http.get("/models").json()["data"]]


def _send(page: Page, name: str, content: bytes, mime: str = "text/csv") -> None:
    page.goto("/ui/affiner")
    page.get_by_label("Fichier d'exemples").set_input_files({"name": name, "mimeType": mime, "buffer": content})
    page.get_by_role("button", name="Vérifier les exemples").click()


@pytest.mark.slow
def test_check_estimate_train_try_and_share(page: Page, ui_server: Server, admin_api: httpx.Client) -> None:
    group = f"Accueil de la mairie {secrets.token_hex(2)}"
    group_id = _new_group(admin_api, group)
    account = _member_of(ui_server, admin_api, group_id)
    colleague = _member_of(ui_server, admin_api, group_id)
    stranger = _member_of(ui_server, admin_api, _new_group(admin_api, f"Autre service {secrets.token_hex(2)}"))
    sign_in(page, account)
    page.get_by_role("link", name="Affiner un modèle").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Affiner un modèle")
    expect(page.get_by_role("link", name="Mes documents").last).to_be_visible()  # new facts: use documents
    check_page(page, "affiner")

    _send(page, "exemples.csv", _csv([QUESTIONS[0], ("Horaires ?", ""), *QUESTIONS[2:]]))
    errors = page.locator("#erreurs-exemples")
    expect(errors).to_contain_text("Ligne 3 : la deuxième colonne (la réponse ou l'étiquette attendue) est vide")
    check_page(page, "affiner-erreurs")

    _send(page, "exemples.csv", _csv(QUESTIONS))
    estimate = page.locator("#estimation")
    expect(estimate).to_contain_text("Vos exemples sont prêts")
    expect(estimate.get_by_role("row", name=re.compile("^Exemples"))).to_contain_text("4")
    expect(estimate).to_contain_text("Durée estimée")
    expect(estimate).to_contain_text("€")
    check_page(page, "affiner-estimation")
    page.get_by_label("Nom court du nouveau modèle").fill("accueil")
    page.get_by_label("Nombre de lectures des exemples").fill("1")
    page.get_by_role("button", name="Lancer l'affinage").click()
    expect(page).to_have_url(re.compile(r"/ui/affiner/\d+$"))
    job_url = page.url

    # The page follows the job by itself: the losses' chart and the events come while it trains.
    expect(page.locator("#etat")).to_have_text("Terminé", timeout=300_000)
    expect(page.locator("#pertes-donnees tbody tr").first).to_be_visible()
    expect(page.locator("#evenements")).to_contain_text("L'entraînement a commencé.")
    expect(page.locator("#evenements")).to_contain_text("Étape 1 sur")
    expect(page.locator("#evenements")).to_contain_text("Le nouveau modèle est prêt")
    model = page.locator("#nouveau-modele").inner_text()
    assert re.fullmatch(r"ft:smollm2-135m:agent-[0-9a-f]+:accueil:ftjob-\d+", model), model

    page.get_by_label("Question").fill("Bonjour")
    page.get_by_role("button", name="Comparer les réponses").click()
    cards = page.locator("#comparaison .fr-card")
    expect(cards).to_have_count(2, timeout=120_000)
    expect(cards.nth(0)).to_contain_text("smollm2-135m")
    expect(cards.nth(1)).to_contain_text(model)
    for card in (cards.nth(0), cards.nth(1)):
        assert card.locator(".socle-reponse").inner_text().strip()
    check_page(page, "affiner-essai")

    page.get_by_label(group).check(force=True)  # the DSFR draws the box on its label
    page.get_by_role("button", name="Enregistrer le partage").click()
    expect(page.get_by_role("status")).to_contain_text("Le partage du modèle est enregistré")
    expect(page.get_by_label(group)).to_be_checked()
    assert model in _models_of(ui_server, admin_api, colleague)  # shared with the group: its members use it
    assert model not in _models_of(ui_server, admin_api, stranger)
    page.goto("/ui/affiner")
    expect(page.get_by_role("row").filter(has_text=model)).to_contain_text("Terminé")
    assert page.url.endswith("/ui/affiner") and job_url


def _xlsx(rows: list[tuple[str, str]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in [("message", "étiquette attendue"), *rows]:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_jsonl_errors_name_their_line_and_a_workbook_is_read_then_cancelled(page: Page, account: Account) -> None:
    sign_in(page, account)
    good = json.dumps({"messages": [{"role": "user", "content": "Bonjour"},
                                    {"role": "assistant", "content": "Bonjour !"}]})
    _send(page, "exemples.jsonl", f"{good}\n{{pas du JSON\n".encode(), "application/jsonl")
    expect(page.locator("#erreurs-exemples")).to_contain_text("Ligne 2 : la ligne n'est pas un objet JSON valide")

    labels = [("Le colis est arrivé abîmé", "réclamation"), ("Merci pour votre accueil", "remerciement"),
              ("Quels sont vos horaires ?", "question")]
    _send(page, "avis.xlsx", _xlsx(labels), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    estimate = page.locator("#estimation")
    expect(estimate.get_by_role("row", name=re.compile("^Exemples"))).to_contain_text("3")
    expect(page.get_by_label("Modèle de base")).to_have_value("smollm2-135m")

    page.get_by_label("Nombre de lectures des exemples").fill("50")
    page.get_by_role("button", name="Lancer l'affinage").click()
    expect(page).to_have_url(re.compile(r"/ui/affiner/\d+$"))
    page.get_by_role("button", name="Annuler l'affinage").click()
    expect(page.get_by_role("status")).to_contain_text("L'affinage est annulé")
    expect(page.locator("#etat")).to_have_text("Annulé", timeout=60_000)
    expect(page.locator("#evenements")).to_contain_text("L'affinage est annulé.")
    expect(page.get_by_role("button", name="Annuler l'affinage")).to_have_count(0)


def test_a_job_that_is_not_ones_own_is_not_found(page: Page, ui_server: Server, admin_api: httpx.Client,
                                          account: Account) -> None:
    sign_in(page, account)
    response = page.goto("/ui/affiner/999999")
    assert response is not None and response.status == 404


@pytest.fixture
def server_without_training(tmp_path: Path, ui_catalogue: Path) -> Iterator[Server]:
    """A server whose Python cannot import peft (``sys.modules["peft"] = None``, Python's own way of marking a module
    absent): the platform as installed without the ``finetune`` extra."""
    shim = tmp_path / "sans-entrainement"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text('import sys\nsys.modules["peft"] = None\n')
    server = start_server(tmp_path / "data", config=ui_catalogue, extra_env={**ENV, "PYTHONPATH": str(shim)})
    yield server
    stop(server.process)


def test_without_the_training_packages_the_page_says_why(browser: Browser,
                                                          server_without_training: Server) -> None:
    server = server_without_training
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"},
                      timeout=60) as admin:
        account = _member_of(server, admin, _new_group(admin, "Essais"))
    with page_on(browser, server) as page:
        sign_in(page, account)
        page.goto("/ui/affiner")
        notice = page.locator("#indisponible")
        expect(notice).to_contain_text("L'affinage n'est pas disponible sur cette plateforme")
        expect(notice).to_contain_text("finetune")
        expect(notice.locator("code")).to_contain_text("peft")
        expect(page.get_by_role("button", name="Vérifier les exemples")).to_have_count(0)
        check_page(page, "affiner-indisponible")
