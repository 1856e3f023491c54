"""Interroger mes documents: a question about the collections one checks, answered with its sources (document,
page, excerpt) linked to the passage they come from; a document's HTML is shown as text; another user's
collection cannot be asked."""
from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.support.documents import pdf
from tests.support.servers import Server
from tests.ui.conftest import (
    Account,
    answered,
    ask,
    check_page,
    create_collection,
    csrf_of,
    new_account,
    sign_in,
    upload_ready,
)

HOSTILE_NAME = "<img src=x onerror=window.__pwned=1>.txt"
HOSTILE_TEXT = ("Consignes d'accès au bâtiment. <script>window.__pwned=2</script> Le port du badge "
                "<img src=x onerror=window.__pwned=3> est obligatoire à l'accueil du ministère.")


def test_ask_a_question_about_my_pdf(page: Page, account: Account, tmp_path: Path, browser: Browser,
                                     ui_server: Server, admin_api: httpx.Client) -> None:
    sign_in(page, account)
    collection_id = create_collection(page, "Guides des titres")
    upload_ready(page, collection_id, "passeport.pdf", pdf(tmp_path / "passeport.pdf").read_bytes())

    page.get_by_role("link", name="Interroger mes documents").click()
    expect(page).to_have_url("/ui/interroger")
    checkbox = page.get_by_label("Guides des titres")
    expect(checkbox).to_be_checked()  # the only collection: checked already
    checkbox.uncheck(force=True)  # the DSFR draws the box over the input, in its label
    ask(page, "smollm2-135m", "Quel est le délai de fabrication d'un passeport ?")
    expect(page.get_by_text("Cochez au moins une collection à interroger.").first).to_be_visible()
    expect(page.locator(".socle-message")).to_have_count(0)
    check_page(page, "interroger")

    checkbox.check(force=True)
    # the bundled model is a demonstration one: its own answer only when asked, labelled so
    expect(page.get_by_text("Faire rédiger la réponse par le modèle de démonstration")).to_be_visible()
    page.get_by_role("button", name="Envoyer").click()
    source = page.locator(".socle-source").filter(has_text="passeport.pdf").first
    expect(source).to_be_visible(timeout=60_000)  # shown before the answer streams in
    expect(source.get_by_role("button")).to_have_text(re.compile(r"^\[\d\] passeport\.pdf, page 2$"))
    expect(source.locator("blockquote")).to_be_hidden()  # folded until opened
    expect(source.locator("blockquote")).to_contain_text("trois semaines")
    answer = answered(page, timeout_ms=120_000)  # by extracts: the answering sentence highlighted, no invention
    expect(answer.locator("strong").filter(has_text="trois semaines").first).to_be_visible()
    expect(answer).to_contain_text("modèle de démonstration")
    label = page.locator(".socle-message--assistant .socle-ai-label").last  # quoted, not generated: said so
    expect(label).to_have_text("Extraits de vos documents, sans reformulation")
    check_page(page, "interroger-reponse")

    page.reload()  # the sources were saved with the answer
    expect(page.locator(".socle-message--assistant .socle-ai-label").last).to_have_text(
        "Extraits de vos documents, sans reformulation")
    expect(page.get_by_label("Guides des titres")).to_be_checked()
    source = page.locator(".socle-source").filter(has_text="trois semaines").first
    expect(source.get_by_role("button")).to_contain_text("passeport.pdf")
    source.get_by_role("button").click()  # opened to read the passage
    expect(source.locator("blockquote")).to_be_visible()
    source.get_by_role("link", name="Lire le passage dans le document").click()
    expect(page).to_have_url(f"/ui/documents/{collection_id}/documents/" + page.url.split("/documents/")[-1])
    passage = page.locator(".socle-passage:target")
    expect(passage).to_contain_text("trois semaines")
    expect(page.get_by_role("heading", level=1)).to_have_text("passeport.pdf")
    check_page(page, "document-passages")

    other = new_account(ui_server, admin_api)
    with browser.new_context(base_url=ui_server.url) as context:
        theirs = context.new_page()
        sign_in(theirs, other)
        theirs.goto("/ui/interroger")
        expect(theirs.get_by_role("main")).not_to_contain_text("Guides des titres")
        response = theirs.request.post("/ui/api/chat", headers={"x-csrf-token": csrf_of(theirs)}, data={
            "model": "hostile", "content": "Quel est le délai de fabrication d'un passeport ?",
            "collections": [collection_id]})
        assert response.status == 404  # someone else's private collection cannot be searched
        response = theirs.goto(page.url)
        assert response is not None and response.status == 404  # nor its passages read


def test_a_documents_html_is_shown_as_text_in_the_sources(page: Page, account: Account) -> None:
    sign_in(page, account)
    collection_id = create_collection(page, "Consignes")
    upload_ready(page, collection_id, HOSTILE_NAME, HOSTILE_TEXT.encode())
    page.goto("/ui/interroger")
    page.get_by_label("Consignes").check(force=True)
    ask(page, "hostile", "Le badge est-il obligatoire ?")
    sources = page.locator(".socle-sources")
    expect(sources.locator("blockquote").first).to_contain_text("<script>window.__pwned=2</script>")
    expect(sources.get_by_role("button").first).to_contain_text(HOSTILE_NAME)
    answered(page)
    assert sources.locator("script, img").count() == 0
    assert page.evaluate("window.__pwned") is None

    page.reload()  # rendered by the server this time
    sources = page.locator(".socle-sources")
    expect(sources.locator("blockquote").first).to_contain_text("<img src=x onerror=window.__pwned=3>")
    expect(sources.get_by_role("button").first).to_contain_text(HOSTILE_NAME)
    assert page.locator("main script, main img").count() == 0
    assert page.evaluate("window.__pwned") is None
    check_page(page, "interroger-html-echappe")


def test_a_file_dropped_into_the_chat_is_cited_and_stays_private(page: Page, account: Account, browser: Browser,
                                                                 ui_server: Server, admin_api: httpx.Client) -> None:
    sign_in(page, account)
    page.locator("#model").select_option("smollm2-135m")
    dropped = page.evaluate_handle("""(text) => {
        const files = new DataTransfer();
        files.items.add(new File([text], "horaires.txt", {type: "text/plain"}));
        return files;
    }""", "Horaires du service. L'accueil du public ouvre à huit heures trente et ferme à dix-sept heures.")
    page.dispatch_event("#conversation", "drop", {"dataTransfer": dropped})
    expect(page).to_have_url(re.compile(r"/ui/chat/\d+$"))  # a conversation made for the file
    conversation = page.url.rsplit("/", 1)[-1]
    item = page.locator(".socle-chat-fichier").filter(has_text="horaires.txt")
    expect(item).to_contain_text("prêt", timeout=60_000)
    expect(page.locator("#conversations")).to_contain_text("Document horaires.txt")
    check_page(page, "chat-fichier")

    ask(page, "smollm2-135m", "À quelle heure ouvre l'accueil du public ?")
    answer = answered(page)
    expect(answer.locator(".socle-source").first.get_by_role("button")).to_have_text("[1] horaires.txt")
    expect(answer.locator("strong").first).to_contain_text("huit heures trente")
    answer.locator(".socle-source").first.get_by_role("button").click()
    passage = answer.get_by_role("link", name="Lire le passage dans le document").first.get_attribute("href")
    assert passage is not None
    page.goto("/ui/documents")  # the conversation's files are its own, not one of "Mes documents"
    expect(page.get_by_role("main")).not_to_contain_text("Fichiers de la conversation")

    other = new_account(ui_server, admin_api)
    with browser.new_context(base_url=ui_server.url) as context:
        theirs = context.new_page()
        sign_in(theirs, other)
        response = theirs.goto(passage)
        assert response is not None and response.status == 404
        files = theirs.request.get(passage.split("#")[0] + "/fichier")
        assert files.status == 404  # nor its original
        listing = theirs.request.get(f"/ui/api/conversations/{conversation}/fichiers")
        assert listing.status == 404
