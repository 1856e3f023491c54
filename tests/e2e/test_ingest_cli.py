"""``socle ingest`` uploads a folder with progress and resumes; documents are found by their words
before (and without) their embeddings."""
from __future__ import annotations

import secrets
from pathlib import Path

import httpx

from tests.support.documents import HTML, MARKDOWN, pdf, upload, wait_ingested, word
from tests.support.servers import Server, start_server, stop


def test_ingest_a_folder_then_resume(server: Server, tmp_path: Path) -> None:
    folder = tmp_path / "dossier"
    (folder / "sous-dossier").mkdir(parents=True)
    pdf(folder / "passeport.pdf")
    word(folder / "sous-dossier" / "teletravail.docx")
    (folder / "carte-grise.html").write_text(HTML, encoding="utf-8")
    (folder / "conges.md").write_text(MARKDOWN, encoding="utf-8")
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff")  # not a document: left out
    (folder / "vide.txt").write_bytes(b"")
    (folder / "copie.md").write_text(MARKDOWN, encoding="utf-8")  # the same content as conges.md
    name = f"Dossier {secrets.token_hex(3)}"

    first = server.cli("ingest", str(folder), "--collection", name, "--url", server.url)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "4 sent, 0 already there; 4 ready, 0 failed" in first.stdout
    assert "3 file(s) skipped" in first.stdout  # each with its reason
    assert "photo.jpg: unsupported type .jpg" in first.stdout and "vide.txt: empty file" in first.stdout
    assert "copie.md: same content as" in first.stdout and "conges.md" in first.stdout

    (folder / "abime.pdf").write_bytes(b"%PDF-1.4\n" + secrets.token_bytes(2000))
    second = server.cli("ingest", str(folder), "--collection", name, "--url", server.url)
    assert second.returncode == 1
    assert "1 sent, 4 already there; 4 ready, 1 failed" in second.stdout
    assert "abime.pdf" in second.stdout and "corrupt" in second.stdout

    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"}) as http:
        collection = next(c for c in http.get("/collections").json()["data"] if c["name"] == name)
        assert collection["documents"] == 5
    missing = server.cli("ingest", str(folder), "--collection", "nulle part", "--no-create", "--url", server.url)
    assert missing.returncode == 1 and "no collection named" in missing.stderr


def test_found_by_words_while_embeddings_are_missing(tmp_path: Path, catalogue: Path) -> None:
    """The embedding model is down: documents are still ready and found, by hybrid search too."""
    server = start_server(tmp_path / "data", config=catalogue,
                          extra_env={"SOCLE_RAG_EMBEDDING_MODEL": "remote-embed-down"})
    try:
        with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"},
                          timeout=60) as http:
            collection = http.post("/collections", json={"name": "sans vecteurs"}).json()["id"]
            document = upload(http, collection, pdf(tmp_path / "passeport.pdf")).json()
            state = wait_ingested(http, [document["id"]], embedded=False)[document["id"]]
            assert state["status"] == "ready" and state["embedded"] == 0 and state["chunks"] == 3
            for method in ("lexical", "hybrid"):
                found = http.post("/search", json={"prompt": "délai de fabrication du passeport",
                                                   "collections": [collection], "method": method}).json()["data"]
                assert found[0]["method"] == "lexical" and "trois semaines" in found[0]["chunk"]["content"]
            semantic = http.post("/search", json={"prompt": "passeport", "collections": [collection],
                                                  "method": "semantic"})
            assert semantic.status_code in (502, 503) and semantic.json()["error"]["message"]
    finally:
        stop(server.process)
