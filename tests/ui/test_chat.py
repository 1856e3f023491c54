"""The chat page: a streamed answer from the embedded model, the stop button that stops the backend, a model's
answer full of HTML shown as text (its code blocks copied), and the chat used by keyboard alone, then on a
phone's screen, with a question refused by a quota kept in the box."""
from __future__ import annotations

import json
import re
import time

import httpx
from playwright.sync_api import Page, expect

from tests.ui.conftest import Account, answered, check_page, model_picker, sign_in, tab_to


def _ask(page: Page, model: str, text: str) -> None:
    model_picker(page).select_option(model)
    page.get_by_label("Votre message").fill(text)
    page.get_by_role("button", name="Envoyer").click()


def test_an_answer_streams_in_then_shows_as_markdown(page: Page, account: Account) -> None:
    sign_in(page, account)
    expect(model_picker(page).locator("option")).to_have_text(["smollm2-135m", "remote-endless", "hostile"])
    assert model_picker(page).locator("option[disabled]").count() == 0  # all can answer now
    page.evaluate("""() => {  // record the answer's text each time it changes, to see it arrive in pieces
        window.__seen = [];
        new MutationObserver(() => {
            const answer = document.querySelector(".socle-message--assistant .socle-message__body");
            if (answer) window.__seen.push(answer.textContent);
        }).observe(document.getElementById("conversation"), {childList: true, subtree: true, characterData: true});
    }""")
    _ask(page, "smollm2-135m", "Write three short sentences about the sea.")
    answer = page.locator(".socle-message--assistant .socle-message__body")
    expect(answer).to_have_attribute("data-done", "true", timeout=60_000)
    expect(page.get_by_role("status").filter(has_text="Réponse terminée")).to_be_attached()
    text = answer.inner_text()
    assert len(text) > 20
    seen = [s for s in page.evaluate("window.__seen") if s]
    assert len(set(seen)) >= 3, seen  # several partial answers were shown before the whole one
    expect(page.locator(".socle-message--user .socle-message__body")).to_have_text(
        "Write three short sentences about the sea.")
    check_page(page, "chat-reponse")

    _ask(page, "smollm2-135m", "And about the mountains?")  # the conversation goes on
    expect(page.locator(".socle-message--assistant")).to_have_count(2)
    expect(page.locator(".socle-message--assistant .socle-message__body").nth(1)).to_have_attribute(
        "data-done", "true", timeout=60_000)


def test_the_stop_button_stops_the_backend(page: Page, account: Account, mock_backend: str) -> None:
    before = httpx.get(mock_backend + "/stats").json()["streams_aborted"]
    sign_in(page, account)
    _ask(page, "remote-endless", "Parle sans t'arrêter.")
    answer = page.locator(".socle-message--assistant .socle-message__body")
    expect(answer).to_contain_text("tok3")
    expect(answer).to_have_attribute("data-rendered", "true")  # shown as the server's Markdown while it streams
    expect(answer.locator("p").first).to_contain_text("tok0 tok1")
    page.keyboard.press("Escape")  # as the button "Arrêter la réponse" does
    expect(answer).to_contain_text("Réponse interrompue.")
    expect(page.get_by_role("button", name="Envoyer")).to_be_enabled()
    deadline = time.monotonic() + 10
    while httpx.get(mock_backend + "/stats").json()["streams_aborted"] == before:  # the backend's stream closed
        assert time.monotonic() < deadline, "the backend kept generating after the stop button"
        time.sleep(0.1)


def test_a_models_html_is_shown_as_text(page: Page, account: Account) -> None:
    sign_in(page, account)
    _ask(page, "hostile", "Bonjour")
    answer = page.locator(".socle-message--assistant .socle-message__body")
    expect(answer).to_have_attribute("data-done", "true")
    expect(answer).to_contain_text("<script>window.__pwned = 1</script>")
    expect(answer).to_contain_text('<img src=x onerror="window.__pwned = 2">')
    expect(answer.locator("strong")).to_have_text("la réponse")  # the Markdown is rendered...
    assert answer.locator("script, img").count() == 0  # ...but none of the HTML
    assert answer.locator("a[href^='javascript']").count() == 0
    assert page.evaluate("window.__pwned") is None
    check_page(page, "chat-html-echappe")

    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    _ask(page, "hostile", "Montre un bloc de code")
    code = answered(page, 1).locator("pre")
    expect(code).to_have_text("<script>window.__pwned = 5</script>")  # the model's HTML, as text
    page.get_by_role("button", name="Copier le code").click()
    expect(page.locator("#chat-status")).to_have_text("Code copié dans le presse-papiers.")
    assert page.evaluate("navigator.clipboard.readText()").strip() == "<script>window.__pwned = 5</script>"
    assert page.locator(".socle-conversation script").count() == 0 and page.evaluate("window.__pwned") is None


def test_the_chat_by_keyboard_alone_then_on_a_phone(page: Page, account: Account, admin_api: httpx.Client) -> None:
    quota = admin_api.post("/quotas", json={"scope": "user", "subject": str(account.id), "model": "hostile",
                                            "requests_per_day": 1})
    assert quota.status_code == 201, quota.text
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, account)

    tab_to(page, "#model", presses=120)
    page.keyboard.type("hostile")  # chosen by typing its name, as on any list
    expect(model_picker(page)).to_have_value("hostile")
    tab_to(page, "#prompt", presses=120)
    page.keyboard.type("Bonjour au clavier")
    page.keyboard.press("Enter")
    answered(page)
    tab_to(page, ".socle-copier", "Shift+Tab", presses=120)
    page.keyboard.press("Enter")
    expect(page.locator("#chat-status")).to_have_text("Réponse copiée dans le presse-papiers.")
    tab_to(page, ".socle-modifier", "Shift+Tab", presses=120)
    page.keyboard.press("Enter")
    expect(page.get_by_label("Nouvelle version de la question")).to_be_focused()
    page.keyboard.press("Escape")  # the edit is dropped, the focus back where it was
    expect(page.get_by_role("button", name="Modifier la question")).to_be_focused()
    expect(page.locator(".socle-message--user .socle-message__body")).to_have_text(["Bonjour au clavier"])
    check_page(page, "chat-clavier")

    tab_to(page, "#prompt", presses=120)  # the quota allows one question a day: the next one is refused and stays in the box
    page.keyboard.type("Une deuxième question")
    page.keyboard.press("Enter")
    expect(page.locator("#prompt-erreur")).to_contain_text("limite")
    expect(page.locator("#prompt-erreur")).to_contain_text(re.compile(
        r"Vous pourrez réessayer dans \d+ (secondes|minutes|heures), vers \d\d:\d\d"))
    expect(page.get_by_label("Votre message")).to_have_value("Une deuxième question")
    expect(page.locator(".socle-message--user")).to_have_count(1)

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    fold = page.get_by_role("button", name="Mes conversations")
    expect(fold).to_be_visible()
    expect(page.locator("#conversations")).to_be_hidden()  # the list folds away
    send = page.get_by_role("button", name="Envoyer")
    box = send.bounding_box()
    assert box is not None and box["y"] + box["height"] <= 844, json.dumps(box)  # the box stays on screen
    check_page(page, "chat-mobile")
    fold.click()
    expect(page.locator("#conversations")).to_be_visible()
    check_page(page, "chat-mobile-conversations")
