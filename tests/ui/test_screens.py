"""The chat and the documents as an agent sees them on an ordinary day — French documents, a question about them
answered by the bundled demonstration model with the passages that answer it, labelled as extracts — checked like
every page, and recorded for the README with ``SOCLE_RECORD_SCREENSHOTS=1``."""
from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from tests.support.documents import pdf, word
from tests.ui.conftest import Account, answered, ask, check_page, create_collection, sign_in, upload_ready


def test_an_agent_s_documents_and_a_question_about_them(page: Page, account: Account, tmp_path: Path) -> None:
    sign_in(page, account)
    collection_id = create_collection(page, "Notes de service")
    upload_ready(page, collection_id, "guide-passeport.pdf", pdf(tmp_path / "guide-passeport.pdf").read_bytes())
    upload_ready(page, collection_id, "circulaire-teletravail.docx",
                 word(tmp_path / "circulaire-teletravail.docx").read_bytes())
    page.goto(f"/ui/documents/{collection_id}")
    expect(page.locator("table").filter(has_text="circulaire-teletravail.docx")).to_contain_text("Prêt")
    check_page(page, "documents")

    page.goto("/ui/interroger")
    ask(page, "smollm2-135m", "Combien de jours par semaine un agent peut-il télétravailler ?")
    answer = answered(page, timeout_ms=120_000)
    expect(answer.locator("strong").filter(has_text="trois jours par semaine").first).to_be_visible()
    expect(answer.locator(".socle-ai-label")).to_have_text("Extraits de vos documents, sans reformulation")
    answer.scroll_into_view_if_needed()
    check_page(page, "chat")
