"""My conversations: saved as they go, listed, reopened, continued; an answer copied and written again, a
question edited and sent again with the earlier versions reachable; searched, exported, renamed and deleted;
another user's conversation answers 404 wherever it is named."""
from __future__ import annotations

import io
import re
import time

import httpx
from playwright.sync_api import Browser, Page, expect
from pypdf import PdfReader

from tests.support.servers import Server
from tests.ui.conftest import Account, answered, ask, check_page, csrf_of, model_picker, new_account, sign_in

CONVERSATION_URL = re.compile(r"/ui/chat/(\d+)$")


def test_a_conversation_is_kept_renamed_and_deleted(page: Page, account: Account, browser: Browser,
                                                     ui_server: Server, admin_api: httpx.Client) -> None:
    sign_in(page, account)
    expect(page.get_by_role("navigation", name="Mes conversations")).to_contain_text("Aucune conversation")
    ask(page, "hostile", "Première question <b>en gras</b> ?")
    answered(page)
    expect(page).to_have_url(CONVERSATION_URL)  # the conversation has its address as soon as it is saved
    url = page.url
    sidebar = page.get_by_role("navigation", name="Mes conversations")
    expect(sidebar.get_by_role("link", name="Première question <b>en gras</b> ?")).to_have_attribute(
        "aria-current", "page")
    ask(page, "hostile", "Deuxième question")
    answered(page, 1)

    page.reload()  # as the server kept it
    expect(page.get_by_role("heading", level=1)).to_have_text("Première question <b>en gras</b> ?")
    expect(page.locator(".socle-message--user .socle-message__body")).to_have_text(
        ["Première question <b>en gras</b> ?", "Deuxième question"])
    answers = page.locator(".socle-message--assistant .socle-message__body")
    expect(answers).to_have_count(2)
    expect(answers.first).to_contain_text("<script>window.__pwned = 1</script>")  # as text, from the database
    assert page.locator(".socle-conversation script, .socle-conversation img").count() == 0
    assert page.evaluate("window.__pwned") is None
    expect(model_picker(page)).to_have_value("hostile")
    check_page(page, "conversation")

    ask(page, "hostile", "Troisième question")  # continued after the reload: the same conversation
    answered(page, 2)
    expect(page).to_have_url(url)

    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    last = page.locator(".socle-message--assistant").nth(2)
    last.get_by_role("button", name="Copier la réponse").click()
    expect(last.get_by_role("button", name="Copié")).to_be_visible()
    expect(page.locator("#chat-status")).to_have_text("Réponse copiée dans le presse-papiers.")
    assert "Voici la réponse" in page.evaluate("navigator.clipboard.readText()")
    expect(page.get_by_role("button", name="Régénérer la réponse")).to_have_count(1)  # the last answer only
    last.get_by_role("button", name="Régénérer la réponse").click()
    rank = page.locator(".socle-message--assistant").nth(2).locator(".socle-versions__rang")
    expect(rank).to_have_text("2/2", timeout=60_000)  # the page shows the versions once the answer is saved
    expect(page.locator(".socle-message--assistant")).to_have_count(3)
    page.locator(".socle-message--assistant").nth(2).get_by_role("button", name="Version précédente").click()
    expect(rank).to_have_text("1/2")

    third = page.locator(".socle-message--user").nth(2)
    third.get_by_role("button", name="Modifier la question").click()
    edition = page.get_by_label("Nouvelle version de la question")
    expect(edition).to_be_focused()
    expect(edition).to_have_value("Troisième question")
    edition.fill("Troisième question, reformulée")
    page.get_by_role("button", name="Envoyer la nouvelle version").click()
    expect(third.locator(".socle-versions__rang")).to_have_text("2/2", timeout=60_000)
    expect(page.locator(".socle-message--user .socle-message__body")).to_have_text(
        ["Première question <b>en gras</b> ?", "Deuxième question", "Troisième question, reformulée"])
    expect(page.locator(".socle-message--assistant")).to_have_count(3)
    check_page(page, "conversation-versions")
    third.get_by_role("button", name="Version précédente").click()
    expect(third.locator(".socle-message__body")).to_have_text("Troisième question")
    # back on the first version of the question, with the newest of its answers (the one written again)
    expect(page.locator(".socle-message--assistant").nth(2).locator(".socle-versions__rang")).to_have_text("2/2")

    with page.expect_download() as download:
        page.get_by_role("link", name="Exporter en PDF").click()
    assert download.value.suggested_filename == f"conversation-{CONVERSATION_URL.search(url).group(1)}.pdf"  # type: ignore[union-attr]
    pdf = PdfReader(io.BytesIO(page.request.get(f"{url}/export.pdf").body()))
    text = " ".join(sheet.extract_text() for sheet in pdf.pages)
    assert "Première question <b>en gras</b> ?" in text and "Réponse de hostile (générée par IA)" in text
    exported = page.request.get(f"{url}/export.md")
    assert exported.headers["content-type"].startswith("text/markdown")
    assert exported.text().startswith("# Première question <b>en gras</b> ?\n")
    assert "## Vous\n\nTroisième question\n" in exported.text()  # the branch shown, not the other versions
    assert "reformulée" not in exported.text()

    other = new_account(ui_server, admin_api)
    conversation_id = CONVERSATION_URL.search(url).group(1)  # type: ignore[union-attr]
    with browser.new_context(base_url=ui_server.url) as context:
        theirs = context.new_page()
        sign_in(theirs, other)
        expect(theirs.get_by_role("navigation", name="Mes conversations")).not_to_contain_text("Première question")
        response = theirs.goto(url)
        assert response is not None and response.status == 404
        expect(theirs.get_by_role("alert")).to_contain_text("n'existe pas ou ne vous est pas accessible")
        theirs.goto("/ui/chat")
        csrf = csrf_of(theirs)
        attempts = [
            theirs.request.post(f"{url}/renommer", form={"title": "À moi", "csrf_token": csrf}),
            theirs.request.post(f"{url}/supprimer", form={"csrf_token": csrf}),
            theirs.request.get(f"{url}/export.md"),
            theirs.request.get(f"{url}/export.pdf"),
            theirs.request.post(f"{url}/version", form={"csrf_token": csrf, "message": "1"}),
            theirs.request.post("/ui/api/chat", headers={"x-csrf-token": csrf}, data={
                "model": "hostile", "content": "Je continue la conversation d'un autre", "conversation":
                int(conversation_id)}),
        ]
        assert [r.status for r in attempts] == [404] * 6

    page.reload()
    expect(page.locator(".socle-message--user")).to_have_count(3)  # nothing was added by the other user
    page.get_by_label("Titre de la conversation").fill("Passeport <i>urgent</i>")
    page.get_by_role("button", name="Renommer").click()
    expect(page).to_have_url(url + "?ok=conversation-renommee")
    expect(page.get_by_role("status").filter(has_text="La conversation a été renommée")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_have_text("Passeport <i>urgent</i>")
    expect(sidebar.get_by_role("link", name="Passeport <i>urgent</i>")).to_be_visible()

    search = page.get_by_role("searchbox", name="Rechercher dans mes conversations")
    search.fill("Reformulée")  # found in a message of another version, whatever the case
    search.press("Enter")
    expect(page).to_have_url(re.compile(r"/ui/chat\?q=Reformul"))
    expect(page.locator("#conversations").get_by_role("link")).to_have_text(["Passeport <i>urgent</i>"])
    expect(sidebar.get_by_role("status")).to_contain_text("1 conversation contenant « Reformulée »")
    check_page(page, "conversations-recherche")
    search = page.get_by_role("searchbox", name="Rechercher dans mes conversations")
    search.fill("introuvable")
    search.press("Enter")
    expect(sidebar.get_by_role("status")).to_contain_text("Aucune conversation ne contient « introuvable »")
    page.goto(url)

    page.get_by_role("button", name="Supprimer la conversation").click()
    expect(page).to_have_url("/ui/chat?ok=conversation-supprimee")
    expect(sidebar).not_to_contain_text("Passeport")
    response = page.goto(url)
    assert response is not None and response.status == 404


def test_a_stopped_answer_is_kept_with_what_was_generated(page: Page, account: Account) -> None:
    sign_in(page, account)
    ask(page, "remote-endless", "Parle sans t'arrêter.")
    answer = page.locator(".socle-message--assistant .socle-message__body")
    expect(answer).to_contain_text("tok3")
    page.get_by_role("button", name="Arrêter la réponse").click()
    expect(answer).to_contain_text("Réponse interrompue.")
    expect(page).to_have_url(CONVERSATION_URL)
    deadline = time.monotonic() + 10
    while True:  # the server saves the answer once it sees the browser leave
        page.reload()
        if page.locator(".socle-message--assistant").count():
            break
        assert time.monotonic() < deadline, "the stopped answer was not saved"
        time.sleep(0.2)
    saved = page.locator(".socle-message--assistant .socle-message__body")
    expect(saved).to_contain_text("tok0 tok1 tok2 tok3")
    assert "tok1199" not in saved.inner_text()
