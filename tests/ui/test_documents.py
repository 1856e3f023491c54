"""My documents: collections, uploads with their progress and status, deletion, and what others can see."""
from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.support.documents import pdf
from tests.support.servers import Server
from tests.ui.conftest import Account, check_page, new_account, sign_in, tab_to

HOSTILE = "<img src=x onerror=window.__pwned=1>"


def _create_collection(page: Page, name: str) -> None:
    page.goto("/ui/documents")
    page.get_by_label("Nom").fill(name)
    page.get_by_role("button", name="Créer la collection").click()
    expect(page).to_have_url(re.compile(r"/ui/documents/\d+\?ok=collection-creee$"))


def test_upload_documents_and_follow_them_until_ready_or_failed(page: Page, account: Account,
                                                                 tmp_path: Path) -> None:
    sign_in(page, account)
    _create_collection(page, f"Circulaires {HOSTILE}<script>window.__pwned=2</script>")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Circulaires {HOSTILE}<script>window.__pwned=2</script>")
    expect(page.get_by_role("status")).to_contain_text("La collection a été créée")
    check_page(page, "collection")

    guide = pdf(tmp_path / "guide.pdf").read_bytes()
    page.get_by_label("Fichiers").set_input_files([
        {"name": "guide-passeport.pdf", "mimeType": "application/pdf", "buffer": guide},
        {"name": f"{HOSTILE}.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4 ceci n'est pas un PDF"},
        {"name": "programme.exe", "mimeType": "application/octet-stream", "buffer": b"MZ"},
    ])
    page.get_by_role("button", name="Envoyer").click()
    uploads = page.locator("#uploads tr")
    expect(uploads).to_have_count(3)
    expect(uploads.nth(0)).to_contain_text("guide-passeport.pdf")
    expect(uploads.nth(0)).to_contain_text("Prêt", timeout=60_000)
    expect(uploads.nth(0).locator("progress")).to_have_attribute("value", "100")
    expect(uploads.nth(1)).to_contain_text(HOSTILE + ".pdf")  # the name, as text
    expect(uploads.nth(1)).to_contain_text("Échec", timeout=60_000)
    expect(uploads.nth(2)).to_contain_text("Ce type de fichier n'est pas pris en charge")
    assert page.evaluate("window.__pwned") is None
    check_page(page, "collection-envois")

    page.reload()  # the documents, as the server lists them
    rows = page.locator("table").filter(has_text="Documents de la collection").locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="guide-passeport.pdf")).to_contain_text("Prêt")
    failed = rows.filter(has_text=HOSTILE)
    expect(failed).to_contain_text("Échec")
    assert len(failed.locator("td").nth(1).inner_text().strip()) > len("Échec")  # with its reason
    failed.get_by_role("button", name="Supprimer").click()
    expect(page.get_by_role("status")).to_contain_text("Le document a été supprimé")
    expect(rows).to_have_count(1)

    page.goto("/ui/documents")
    expect(page.get_by_role("link", name=f"Circulaires {HOSTILE}")).to_be_visible()
    assert page.evaluate("window.__pwned") is None
    check_page(page, "documents-liste")


def test_another_user_cannot_see_my_private_collection(page: Page, account: Account, browser: Browser,
                                                        ui_server: Server, admin_api: httpx.Client) -> None:
    sign_in(page, account)
    _create_collection(page, "Dossiers confidentiels")
    url = page.url.split("?")[0]
    other = new_account(ui_server, admin_api)
    with browser.new_context(base_url=ui_server.url) as context:
        theirs = context.new_page()
        sign_in(theirs, other)
        theirs.goto("/ui/documents")
        expect(theirs.get_by_role("main")).not_to_contain_text("Dossiers confidentiels")
        response = theirs.goto(url)
        assert response is not None and response.status == 404
        expect(theirs.get_by_role("alert")).to_contain_text("n'existe pas ou ne vous est pas accessible")
        theirs.goto("/ui/documents")
        csrf = theirs.locator('meta[name="csrf-token"]').get_attribute("content")
        upload = theirs.request.post("/ui/api/documents", headers={"x-csrf-token": csrf or ""}, multipart={
            "collection": url.rsplit("/", 1)[1],
            "file": {"name": "intrus.txt", "mimeType": "text/plain", "buffer": b"Je n'ai rien a faire ici."}})
        assert upload.status == 404  # nor can they write into it

    page.goto(url)  # the owner deletes it
    page.get_by_role("button", name="Supprimer la collection").click()
    expect(page).to_have_url("/ui/documents?ok=collection-supprimee")
    expect(page.get_by_role("main")).not_to_contain_text("Dossiers confidentiels")


def test_the_documents_page_by_keyboard_alone_then_on_a_phone(page: Page, account: Account) -> None:
    sign_in(page, account)
    page.goto("/ui/documents")


    tab_to(page, "#name")
    page.keyboard.type("Notes de service")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/ui/documents/\d+\?ok=collection-creee$"))
    tab_to(page, "#files")
    with page.expect_file_chooser() as chooser:
        page.keyboard.press(" ")  # the space bar, as a person presses it
    name = 'note "urgente"\r\n.txt'
    content = "Note de service. Les bureaux ferment à dix-huit heures le vendredi.".encode()
    chooser.value.set_files([{"name": name, "mimeType": "text/plain", "buffer": content}])
    tab_to(page, "#upload-form button[type=submit]")
    page.keyboard.press("Enter")
    listed = page.locator("#documents tr").filter(has_text="note")
    expect(listed).to_contain_text("Prêt", timeout=60_000)  # the table follows the document by itself
    expect(listed.locator(".socle-passages")).to_have_text("1")
    expect(listed.get_by_role("link", name=re.compile("^note"))).to_be_visible()  # its passages, once ready

    page.reload()
    tab_to(page, "#documents a[download]")
    with page.expect_download() as download:
        page.keyboard.press("Enter")
    assert open(download.value.path(), "rb").read() == content  # the original file, as it was sent
    disposition = page.request.get(page.locator("#documents a[download]").get_attribute("href") or "").headers[
        "content-disposition"]
    assert disposition.startswith("attachment; filename*=utf-8''") and "\n" not in disposition
    tab_to(page, "#documents td.socle-nom a")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("note")
    expect(page.locator(".socle-passage")).to_contain_text("dix-huit heures")
    page.go_back()
    check_page(page, "collection-clavier")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.locator("#depot")).to_be_visible()
    check_page(page, "collection-telephone")
