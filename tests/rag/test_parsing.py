"""Parsing real files of every supported format, and refusing bad ones cleanly."""
from __future__ import annotations

import zipfile
from pathlib import Path

import docx
import pytest
from odf import text as odf_text
from odf.opendocument import OpenDocumentText
from pypdf import PdfReader, PdfWriter

from socle.rag.parsing import Limits, ParseError, Sandbox, parse_file
from tests.support.documents import pdf


def test_pdf_pages_and_title(tmp_path: Path) -> None:
    path = pdf(tmp_path / "guide.pdf", ["Première page : la demande de passeport.",
                                         "Deuxième page : le délai de fabrication est de trois semaines."])
    document = parse_file(path, "guide.pdf")
    assert document.pages == 2 and document.title == "Guide du passeport"
    assert [s.page for s in document.sections] == [1, 2]
    assert "délai de fabrication" in document.sections[1].text


def test_docx_headings_paragraphs_tables(tmp_path: Path) -> None:
    word = docx.Document()
    word.core_properties.title = "Circulaire"
    word.add_heading("Objet", level=1)
    word.add_paragraph("La présente circulaire précise les modalités du télétravail.")
    word.add_heading("Mise en œuvre", level=2)
    word.add_paragraph("Trois jours par semaine au plus.")
    table = word.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "Agents", "Catégorie A"
    word.save(str(tmp_path / "c.docx"))
    document = parse_file(tmp_path / "c.docx", "c.docx")
    assert document.title == "Circulaire"
    assert [s.title for s in document.sections] == ["Objet", "Mise en œuvre"]
    assert "Trois jours par semaine" in document.sections[1].text and "Agents | Catégorie A" in document.text


def test_odt(tmp_path: Path) -> None:
    odt = OpenDocumentText()
    odt.text.addElement(odf_text.H(outlinelevel=1, text="Accueil du public"))
    odt.text.addElement(odf_text.P(text="Les guichets ouvrent à 8 h 30."))
    odt.save(str(tmp_path / "a.odt"))
    document = parse_file(tmp_path / "a.odt", "a.odt")
    assert document.sections[0].title == "Accueil du public"
    assert "8 h 30" in document.sections[0].text


def test_html_visible_text_only(tmp_path: Path) -> None:
    (tmp_path / "p.html").write_text(
        "<html><head><title>Carte grise</title><style>p{}</style></head><body><nav>Menu</nav>"
        "<h1>Changer d'adresse</h1><p>Vous avez <b>un mois</b> pour déclarer.</p>"
        "<script>alert('x')</script></body></html>", encoding="utf-8")
    document = parse_file(tmp_path / "p.html", "p.html")
    assert document.title == "Carte grise"
    assert document.sections[0].title == "Changer d'adresse"
    assert "Vous avez un mois pour déclarer." in document.text
    assert "alert" not in document.text and "Menu" not in document.text


def test_markdown_and_text_in_any_encoding(tmp_path: Path) -> None:
    (tmp_path / "m.md").write_text("# Titre\n\nUn *paragraphe* avec `code`.\n\n## Suite\n\nFin.", encoding="utf-8")
    document = parse_file(tmp_path / "m.md", "m.md")
    assert [s.title for s in document.sections] == ["Titre", "Suite"]
    assert document.sections[0].text == "Un paragraphe avec code."
    (tmp_path / "t.txt").write_bytes("Délai : réponse sous huit jours ouvrés.".encode("latin-1"))
    assert "réponse sous huit jours" in parse_file(tmp_path / "t.txt", "t.txt").text


def _encrypted_pdf(tmp_path: Path) -> Path:
    writer = PdfWriter(clone_from=PdfReader(pdf(tmp_path / "plain.pdf", ["secret"])))
    writer.encrypt("motdepasse")
    with (tmp_path / "locked.pdf").open("wb") as handle:
        writer.write(handle)
    return tmp_path / "locked.pdf"


def _zip_bomb(tmp_path: Path) -> Path:
    with zipfile.ZipFile(tmp_path / "bomb.docx", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"\0" * (300 * 1024 * 1024))
    return tmp_path / "bomb.docx"


def _bytes(content: bytes):  # type: ignore[no-untyped-def]
    def make(directory: Path) -> Path:
        (directory / "upload").write_bytes(content)
        return directory / "upload"
    return make


@pytest.mark.parametrize("make, name, reason", [
    (_bytes(b""), "e.pdf", "empty"),
    (_bytes(b"%PDF-1.7\n garbage \x00\x01"), "c.pdf", "corrupt"),
    (_encrypted_pdf, "locked.pdf", "encrypted"),
    (lambda p: pdf(p / "x.pdf", ["x"]), "x.docx", "does not match the extension"),
    (_bytes(b"\x00\x01\x02binary"), "b.txt", "binary"),
    (_bytes(b"MZ"), "v.exe", "Unsupported file type"),
    (_bytes(b"PK\x03\x04 broken"), "k.docx", "corrupt"),
    (_zip_bomb, "bomb.docx", "Refused"),
])
def test_bad_files_fail_with_a_clear_reason(tmp_path: Path, make, name: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path)
    with pytest.raises(ParseError, match=reason):
        parse_file(path, name)


def test_oversized_and_too_many_pages(tmp_path: Path) -> None:
    path = pdf(tmp_path / "long.pdf", ["page"] * 5)
    with pytest.raises(ParseError, match="above the limit"):
        parse_file(path, "long.pdf", Limits(max_bytes=100))
    with pytest.raises(ParseError, match="5 pages"):
        parse_file(path, "long.pdf", Limits(max_pages=4))


async def test_the_sandbox_parses_and_bounds_time_and_memory(tmp_path: Path) -> None:
    sandbox = Sandbox(Limits(memory_mb=400, timeout_s=60, max_bytes=500 * 1024 * 1024))
    try:
        path = pdf(tmp_path / "ok.pdf", ["Bonjour depuis le bac à sable."])
        assert "bac à sable" in (await sandbox.parse(path, "ok.pdf")).text
        big = tmp_path / "big.txt"
        big.write_bytes(b"mot " * (100 * 1024 * 1024 // 4))  # 100 MB of text: decoding and cleaning need more
        with pytest.raises(ParseError, match="memory|crashed"):
            await sandbox.parse(big, "big.txt")
        # The sandbox keeps serving after a failure.
        assert "bac à sable" in (await sandbox.parse(path, "ok.pdf")).text
    finally:
        sandbox.close()
    slow = Sandbox(Limits(timeout_s=0.01))
    try:
        with pytest.raises(ParseError, match="longer than"):
            await slow.parse(pdf(tmp_path / "s.pdf", ["x"]), "s.pdf")
    finally:
        slow.close()
