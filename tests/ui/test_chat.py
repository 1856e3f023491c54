"""The chat page: a streamed answer from the embedded model, the stop button that stops the backend, and a
model's answer full of HTML shown as text."""
from __future__ import annotations

import time

import httpx
from playwright.sync_api import Page, expect

from tests.ui.conftest import Account, check_page, sign_in


def _ask(page: Page, model: str, text: str) -> None:
    page.get_by_label("Modèle").select_option(model)
    page.get_by_label("Votre message").fill(text)
    page.get_by_role("button", name="Envoyer").click()


def test_an_answer_streams_in_then_shows_as_markdown(page: Page, account: Account) -> None:
    sign_in(page, account)
    expect(page.get_by_label("Modèle").locator("option")).to_have_text(["smollm2-135m", "remote-endless", "hostile"])
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
    check_page(page, "chat")

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
    page.get_by_role("button", name="Arrêter la réponse").click()
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
