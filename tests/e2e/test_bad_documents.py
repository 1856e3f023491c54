"""Bad files fail their own document with a clear reason; the server and the other documents go on."""
from __future__ import annotations

import io
import secrets
import zipfile
from pathlib import Path

import httpx
from pypdf import PdfReader, PdfWriter

from tests.support.documents import MARKDOWN, pdf, upload, wait_ingested
from tests.support.servers import Server


def _zip_bomb(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"<" + b"a" * (60 * 1024 * 1024))
    return path


def _encrypted_pdf(path: Path, tmp: Path) -> Path:
    writer = PdfWriter(clone_from=PdfReader(pdf(tmp / "plain.pdf")))
    writer.encrypt(user_password="secret", owner_password="owner")
    writer.write(str(path))
    return path


def test_bad_files_fail_cleanly(any_server: Server, admin: httpx.Client, tmp_path: Path) -> None:
    collection = admin.post("/collections", json={"name": f"bad-{secrets.token_hex(3)}"}).json()["id"]
    (tmp_path / "corrupt.pdf").write_bytes(b"%PDF-1.7\n" + secrets.token_bytes(4000))
    pdf(tmp_path / "disguised.docx")  # a PDF named as a Word file
    (tmp_path / "truncated.docx").write_bytes(b"PK\x03\x04" + b"\0" * 100)
    (tmp_path / "binary.txt").write_bytes(secrets.token_bytes(5000))
    expected = {
        "corrupt.pdf": "corrupt",
        "disguised.docx": "does not match the extension",
        "truncated.docx": "corrupt",
        "bomb.docx": "decompression bomb",
        "locked.pdf": "encrypted",
        "binary.txt": "text",
    }
    _zip_bomb(tmp_path / "bomb.docx")
    _encrypted_pdf(tmp_path / "locked.pdf", tmp_path)
    (tmp_path / "good.md").write_text(MARKDOWN, encoding="utf-8")
    ids = {}
    for name in [*expected, "good.md"]:
        response = upload(admin, collection, tmp_path / name)
        assert response.status_code == 201, response.text
        ids[name] = response.json()["id"]
    states = wait_ingested(admin, list(ids.values()))
    for name, reason in expected.items():
        state = states[ids[name]]
        assert state["status"] == "failed" and reason in state["error"].lower(), (name, state)
        assert state["chunks"] == 0
    assert states[ids["good.md"]]["status"] == "ready"
    assert httpx.get(any_server.url + "/health").status_code == 200


def test_refused_at_upload(any_server: Server, admin: httpx.Client, tmp_path: Path) -> None:
    collection = admin.post("/collections", json={"name": f"refused-{secrets.token_hex(3)}"}).json()["id"]
    before = admin.get(f"/collections/{collection}").json()["documents"]
    (tmp_path / "empty.md").write_bytes(b"")
    (tmp_path / "setup.exe").write_bytes(b"MZ" + b"\0" * 100)
    (tmp_path / "huge.txt").write_bytes(b"a" * (3 * 1024 * 1024))  # the test servers accept 2 MiB
    for name, status, code in [("empty.md", 400, "empty_file"), ("setup.exe", 400, "unsupported_file_type"),
                               ("huge.txt", 413, "request_too_large")]:
        response = upload(admin, collection, tmp_path / name)
        assert response.status_code == status, (name, response.text)
        assert response.json()["error"]["code"] == code
    assert upload(admin, 999_999, tmp_path / "setup.exe").status_code in (400, 404)
    with io.BytesIO(b"# Titre\n\nTexte.") as handle:
        bad_size = admin.post("/documents", files={"file": ("a.md", handle)},
                              data={"collection": str(collection), "chunk_size": "10"})
    assert bad_size.status_code == 400 and bad_size.json()["error"]["param"] == "chunk_size"
    assert admin.get(f"/collections/{collection}").json()["documents"] == before
