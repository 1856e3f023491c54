"""kill -9 during ingestion loses no accepted document: after a restart, every one ends ready, once."""
from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.support.documents import pdf, upload, wait_ingested
from tests.support.servers import start_server, stop

ENV = {"SOCLE_JOB_LEASE_S": "2", "SOCLE_INGESTION_WORKERS": "1", "SOCLE_MAX_UPLOAD_BYTES": str(8 * 1024 * 1024)}
WORDS = ("agent public demande dossier délai service préfecture commune formulaire justificatif usager titre "
         "instruction recours décision notification paiement").split()


def _document(path: Path, seed: int) -> Path:
    """A 12-page PDF whose text is its own (so that every file has its own content hash)."""
    import random

    rng = random.Random(seed)
    pages = [f"Document {seed}, page {page}. " + " ".join(rng.choice(WORDS) for _ in range(120))
             for page in range(12)]
    return pdf(path, pages, title=f"Procédure {seed}")


def test_kill_during_ingestion_then_restart(tmp_path: Path, own_database: str | None) -> None:
    database = own_database
    files = [_document(tmp_path / f"procedure-{i}.pdf", i) for i in range(8)]
    server = start_server(tmp_path / "data", database_url=database, extra_env=ENV)
    try:
        http = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"},
                            timeout=60)
        collection = http.post("/collections", json={"name": "procédures"}).json()["id"]
        accepted = [upload(http, collection, path).json()["id"] for path in files]
        time.sleep(0.5)  # some documents are being parsed or embedded now
        before = {i: http.get(f"/documents/{i}").json() for i in accepted}
        server.process.kill()  # kill -9: no shutdown, leases left behind
        server.process.wait()
    finally:
        stop(server.process)
    unfinished = [d for d in before.values() if d["status"] != "ready" or d["embedded"] < d["chunks"]]
    assert unfinished, "the kill came after the ingestion: nothing was interrupted"

    server = start_server(tmp_path / "data", database_url=database, extra_env=ENV)
    try:
        with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"},
                          timeout=60) as http:
            states = wait_ingested(http, accepted, timeout_s=300)
            assert {s["status"] for s in states.values()} == {"ready"}, states
            for document_id, state in states.items():
                chunks = http.get(f"/chunks/{document_id}", params={"limit": 1000}).json()["data"]
                assert [c["metadata"]["index"] for c in chunks] == list(range(state["chunks"]))  # no duplicates
                assert state["chunks"] >= 12 and state["embedded"] == state["chunks"]
            assert http.get(f"/collections/{collection}").json()["chunks"] == sum(s["chunks"] for s in states.values())
            hits = http.post("/search", json={"prompt": "Document 7, page 11", "collections": [collection],
                                              "method": "lexical", "k": 50}).json()["data"]
            assert len({h["chunk"]["id"] for h in hits}) == len(hits)
    finally:
        stop(server.process)


def test_a_new_document_never_takes_a_deleted_ones_id_even_after_a_restart(tmp_path: Path,
                                                                           own_database: str | None) -> None:
    """The newest document deleted, the next upload gets a new id: its ingestion is never mistaken for the
    deleted one's (finished) job, and it ends ready, before and after a restart."""
    files = [_document(tmp_path / f"note-{i}.pdf", 100 + i) for i in range(3)]
    deleted: list[int] = []
    for run in range(2):
        server = start_server(tmp_path / "data", database_url=own_database, extra_env=ENV)
        try:
            headers = {"Authorization": f"Bearer {server.admin_key}"}
            with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as http:
                if run == 0:
                    collection = http.post("/collections", json={"name": "notes"}).json()["id"]
                    first = upload(http, collection, files[0]).json()["id"]
                    assert wait_ingested(http, [first], timeout_s=120)[first]["status"] == "ready"
                    newest = first
                assert http.delete(f"/documents/{newest}").status_code == 204  # the newest document
                deleted.append(newest)
                newest = upload(http, collection, files[run + 1]).json()["id"]
                assert newest > max(deleted)
                state = wait_ingested(http, [newest], timeout_s=120)[newest]
                assert (state["status"], state["embedded"]) == ("ready", state["chunks"]), state
        finally:
            stop(server.process)
