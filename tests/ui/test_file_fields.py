"""Every file field speaks French: the browser's own button and status ("Choose File", "No file chosen", in the
browser's language whatever the page's) are never seen; a DSFR button says « Choisir un fichier », the files
chosen are named beside it, and the field keeps its label and its keyboard focus."""
from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from tests.support.servers import Server
from tests.ui.conftest import check_page, create_collection, new_account, sign_in, tab_to

NOTHING = "Aucun fichier choisi"


def test_every_file_field_is_in_french(page: Page, ui_server: Server, admin_api: httpx.Client) -> None:
    sign_in(page, new_account(ui_server, admin_api, role="admin"))
    collection_id = create_collection(page, "Pièces jointes")
    for path in (f"/ui/documents/{collection_id}", "/ui/chat", "/ui/admin/utilisateurs/import", "/ui/avis",
                 "/ui/panorama"):
        page.goto(path)
        fields = page.locator('input[type="file"]')
        expect(fields.first).to_be_attached()
        for index in range(fields.count()):
            field = fields.nth(index)
            assert field.evaluate("f => getComputedStyle(f).opacity") == "0", path  # its English words unseen
            zone = field.locator("xpath=..")
            expect(zone.locator(".socle-fichier__bouton")).to_have_text(
                re.compile("^Choisir (un fichier|des fichiers)$"))
            expect(zone.locator(".socle-fichier__choisis")).to_have_text(NOTHING)
            assert field.evaluate("f => f.labels.length") == 1, path  # named by its own label, as before

    page.goto(f"/ui/documents/{collection_id}")
    field = page.get_by_label("Fichiers")
    chosen = page.locator("#files-choisis")
    field.set_input_files([{"name": "note.txt", "mimeType": "text/plain", "buffer": b"Une note."}])
    expect(chosen).to_have_text("note.txt")
    field.set_input_files([{"name": n, "mimeType": "text/plain", "buffer": b"Une note."} for n in ("a.txt", "b.txt")])
    expect(chosen).to_have_text("2 fichiers choisis")
    page.get_by_role("button", name="Envoyer").click()
    expect(chosen).to_have_text(NOTHING)  # sent: the field is empty again
    page.goto(f"/ui/documents/{collection_id}")
    tab_to(page, "#files")  # the keyboard reaches the field; its focus shows on the button
    outline = page.locator(".socle-fichier__bouton").evaluate("b => getComputedStyle(b).outlineStyle")
    assert outline == "solid"
    check_page(page, "documents-champ-fichier")
