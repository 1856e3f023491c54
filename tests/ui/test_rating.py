"""Rating an answer (thumbs, then a comment): stored on the message, shown again after a reload; a forged
rating without the session's CSRF token is refused, and no one rates another user's answer."""
from __future__ import annotations

import re

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.support.forms import forged
from tests.support.servers import Server
from tests.ui.conftest import Account, answered, ask, check_page, csrf_of, new_account, sign_in


def test_thumbs_up_then_a_comment(page: Page, account: Account, browser: Browser, ui_server: Server,
                                  admin_api: httpx.Client) -> None:
    sign_in(page, account)
    ask(page, "hostile", "Combien coûte un passeport ?")
    answer = answered(page)
    up = answer.get_by_role("button", name="Réponse utile", exact=True)
    expect(up).to_have_attribute("aria-pressed", "false")
    action = answer.locator("form").first.get_attribute("action")
    assert action and re.fullmatch(r"/ui/chat/\d+/messages/\d+/avis", action)

    up.click()  # the form that came with the streamed answer
    expect(page).to_have_url(re.compile(r"/ui/chat/\d+\?ok=avis-enregistre#message-\d+$"))
    expect(page.get_by_role("status").filter(has_text="votre avis sur cette réponse est enregistré")).to_be_visible()
    answer = page.locator(".socle-message--assistant")
    expect(answer.get_by_role("button", name="Réponse utile", exact=True)).to_have_attribute("aria-pressed", "true")
    expect(answer.get_by_role("button", name="Réponse pas utile")).to_have_attribute("aria-pressed", "false")

    answer.get_by_text("Ajouter un commentaire").click()
    answer.get_by_label("Commentaire sur cette réponse").fill("Le tarif manque <b>encore</b>.")
    answer.get_by_role("button", name="Enregistrer le commentaire").click()
    expect(page).to_have_url(re.compile(r"\?ok=avis-enregistre#message-\d+$"))
    page.reload()
    answer = page.locator(".socle-message--assistant")
    expect(answer.get_by_label("Commentaire sur cette réponse")).to_have_value("Le tarif manque <b>encore</b>.")
    expect(answer.get_by_role("button", name="Réponse utile", exact=True)).to_have_attribute(
        "aria-pressed", "true")  # the comment kept the thumb
    check_page(page, "chat-avis")

    request = page.request  # the browser's cookies: only the token is missing
    refused = [request.post(action, form={"rating": "-1"}),
              request.post(action, form={"comment": "forgé", "csrf_token": forged(csrf_of(page))}),
              request.post(action, form={"rating": "-1", "csrf_token": csrf_of(page)},
                           headers={"origin": "https://attaquant.example"})]
    assert [r.status for r in refused] == [403, 403, 403]

    other = new_account(ui_server, admin_api)
    with browser.new_context(base_url=ui_server.url) as context:
        theirs = context.new_page()
        sign_in(theirs, other)
        response = theirs.request.post(action, form={"rating": "-1", "csrf_token": csrf_of(theirs)})
        assert response.status == 404  # not even told that the answer exists

    page.reload()
    answer = page.locator(".socle-message--assistant")
    expect(answer.get_by_role("button", name="Réponse utile", exact=True)).to_have_attribute("aria-pressed", "true")
    expect(answer.get_by_label("Commentaire sur cette réponse")).to_have_value("Le tarif manque <b>encore</b>.")
    question = page.locator(".socle-message--user")
    assert question.locator("form").count() == 0  # only answers are rated
