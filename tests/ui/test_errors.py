"""One rule from a refusal to a status, for both faces: a page answers the status the API answers for the same
refusal, in French on the DSFR's error page (in JSON for the pages' own fetches), and a model's own refusal
(its 4xx) is that refusal, not a server error."""
from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from tests.support.servers import Server
from tests.ui.conftest import Account, ask, check_page, csrf_of, sign_in

UNKNOWN = 999_999_999


def test_a_refused_page_answers_the_apis_status_on_the_french_error_page(page: Page, ui_server: Server,
                                                                         admin_api: httpx.Client,
                                                                         account: Account) -> None:
    issued = admin_api.post("/keys", json={"user_id": account.id, "name": "comparaison"})
    assert issued.status_code == 201, issued.text
    with httpx.Client(base_url=ui_server.base_url, headers={"Authorization": f"Bearer {issued.json()['key']}"},
                      timeout=30) as api:
        same_refusals = {  # a page, and the API's answer to the same person for the same thing
            "/ui/admin/utilisateurs": (api.get("/users"), "Votre rôle ne vous permet pas de faire cela."),
            f"/ui/documents/{UNKNOWN}": (api.get(f"/collections/{UNKNOWN}"),
                                         "Cet élément n'existe pas ou ne vous est pas accessible."),
        }
    sign_in(page, account)
    for path, (answer, words) in same_refusals.items():
        assert answer.status_code in (403, 404), answer.text
        assert set(answer.json()["error"]) == {"message", "type", "param", "code"}  # the API keeps its envelope
        response = page.goto(path)
        assert response is not None and response.status == answer.status_code, (path, response and response.status)
        expect(page.get_by_role("heading", level=1)).to_have_text("Erreur")
        expect(page.get_by_role("alert")).to_have_text(words)
        expect(page.locator(".socle-account").first).to_have_text(account.email)  # still shown as signed in
    check_page(page, "erreur-introuvable")

    revoked = page.request.post(f"/ui/cles/{UNKNOWN}/revoquer", headers={"x-csrf-token": csrf_of(page)})
    assert revoked.status == 404  # a form's action: the same page, the same rule
    assert "ne vous est pas accessible" in revoked.text() and 'class="fr-alert fr-alert--error"' in revoked.text()

    fetched = page.request.get(f"/ui/api/documents/{UNKNOWN}")  # the pages' own fetches: JSON, in French
    assert fetched.status == 404
    assert fetched.json() == {"error": {"message": "Cet élément n'existe pas ou ne vous est pas accessible."}}


def test_a_models_refusal_is_a_refusal_not_a_server_error(page: Page, account: Account) -> None:
    sign_in(page, account)
    with page.expect_response("**/ui/api/chat") as waiting:
        ask(page, "hostile", "Résume ce compte rendu : " + "la séance est ouverte. " * 2_000)  # beyond its context
    assert waiting.value.status == 400  # the model's own status, as the API passes it on
    note = page.locator("#prompt-erreur")  # refused before any answer: the question stays in the box, with the reason
    expect(page.locator("#prompt")).to_have_value(re.compile(r"^Résume ce compte rendu"))
    expect(note).to_contain_text("Le modèle a refusé la demande")
    expect(note).to_contain_text("context too long <img src=x")  # its words, as text
    assert page.evaluate("window.__pwned") is None
