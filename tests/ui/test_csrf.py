"""Every state-changing request needs its session's CSRF token and this origin: otherwise 403."""
from __future__ import annotations

import httpx
from playwright.sync_api import Page

from tests.support.forms import forged
from tests.support.servers import Server
from tests.ui.conftest import Account, sign_in


def test_posts_without_the_sessions_token_are_refused(page: Page, account: Account, ui_server: Server) -> None:
    sign_in(page, account)
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    request = page.request  # the browser's cookies: only the token is missing
    refused = [
        request.post("/ui/cles", form={"name": "sans jeton"}),
        request.post("/ui/cles", form={"name": "mauvais jeton", "csrf_token": forged(token)}),
        request.post("/ui/documents", form={"name": "sans jeton"}),
        request.post("/ui/deconnexion"),
        request.post("/ui/api/chat", data={"model": "hostile", "content": "x"}),
        request.post("/ui/chat/1/renommer", form={"title": "sans jeton"}),
        request.post("/ui/chat/1/supprimer"),
        request.post("/ui/chat/1/messages/2/avis", form={"rating": "1"}),
        request.post("/ui/admin/utilisateurs", form={"email": "csrf@ministere.gouv.fr"}),
        request.post("/ui/admin/utilisateurs/1", form={"role": "user"}),
        request.post("/ui/admin/utilisateurs/1/activation", form={"active": "0"}),
        request.post("/ui/admin/groupes", form={"name": "sans jeton"}),
        request.post("/ui/admin/modeles/nouveau", form={"id": "sans-jeton", "url": "http://127.0.0.1:9/v1"}),
        request.post("/ui/admin/modeles/1/tester"),
        request.post("/ui/admin/modeles/1/activation", form={"active": "0"}),
        request.post("/ui/admin/groupes/1/membres", form={"email": "x@ministere.gouv.fr"}),
        request.post("/ui/admin/groupes/1/membres/1/retirer"),
        request.post("/ui/admin/quotas", form={"scope": "global", "requests_per_minute": "1"}),
        request.post("/ui/admin/quotas/1/supprimer"),
        request.post("/ui/cles", form={"name": "autre site", "csrf_token": token},
                     headers={"origin": "https://attaquant.example"}),
    ]
    assert [r.status for r in refused] == [403] * len(refused)
    assert "elle est refusée" in refused[0].text()

    accepted = request.post("/ui/cles", form={"name": "avec jeton", "csrf_token": token})
    assert accepted.status == 201
    page.goto("/ui/cles")
    names = page.locator("tbody td:first-child").all_inner_texts()
    assert names == ["avec jeton"]  # none of the refused requests did anything


def test_sign_in_form_needs_its_own_token(account: Account, ui_server: Server) -> None:
    """Login CSRF: another site cannot sign a browser into an account of its choosing."""
    response = httpx.post(ui_server.url + "/ui/connexion", data={"email": account.email,
                                                               "password": account.password})
    assert response.status_code == 403
    assert "socle_session" not in response.cookies
