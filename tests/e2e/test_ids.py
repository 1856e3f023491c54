"""PostgreSQL ids do not run out at 2^31: past it, everything works through the API as before."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import httpx
import openai

from tests.apps.feedback.support import MESSAGES, import_file, jsonl, wait_analysis
from tests.conftest import TEST_LIMITS
from tests.support.documents import pdf, upload, wait_ingested
from tests.support.servers import start_server, stop

BEYOND_32_BITS = 3_000_000_000


def _every_sequence_restarts_at(url: str, value: int) -> None:
    async def restart() -> None:
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            for (sequence,) in await connection.fetch("SELECT sequencename FROM pg_sequences"):
                await connection.execute(f'ALTER SEQUENCE "{sequence}" RESTART WITH {value}')
        finally:
            await connection.close()

    asyncio.run(restart())


def _client(base_url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def test_ids_beyond_2_31(tmp_path: Path, postgres_database: str, catalogue: Path) -> None:
    server = start_server(tmp_path / "data", database_url=postgres_database, config=catalogue,
                          extra_env=TEST_LIMITS)
    try:
        _every_sequence_restarts_at(postgres_database, BEYOND_32_BITS)
        admin = _client(server.base_url, server.admin_key)
        group = admin.post("/groups", json={"name": "dgfip"}).json()
        user = admin.post("/users", json={"email": "agent@finances.gouv.fr", "groups": ["dgfip"]}).json()
        key = admin.post("/keys", json={"user_id": user["id"]}).json()
        quota = admin.post("/quotas", json={"scope": "user", "subject": str(user["id"]),
                                            "requests_per_day": 100})
        assert quota.status_code == 201, quota.text
        assert min(group["id"], user["id"], key["id"], quota.json()["id"]) >= BEYOND_32_BITS
        assert admin.get(f"/users/{user['id']}").json()["groups"] == ["dgfip"]

        http = _client(server.base_url, key["key"])
        collection = http.post("/collections", json={"name": "guides"}).json()
        document = upload(http, collection["id"], pdf(tmp_path / "passeport.pdf")).json()
        assert min(collection["id"], document["id"]) >= BEYOND_32_BITS
        state = wait_ingested(http, [document["id"]])[document["id"]]
        assert state["status"] == "ready" and state["embedded"] == state["chunks"] > 0, state
        chunks = http.get(f"/chunks/{document['id']}").json()["data"]
        assert min(c["id"] for c in chunks) >= BEYOND_32_BITS
        hits = http.post("/search", json={"prompt": "délai de fabrication du passeport",
                                          "collections": [collection["id"]]}).json()["data"]
        assert hits and hits[0]["chunk"]["metadata"]["document_id"] == document["id"]

        sdk = openai.OpenAI(base_url=server.base_url, api_key=key["key"], max_retries=0)
        assert sdk.chat.completions.create(model="remote-chat", messages=[{"role": "user", "content": "?"}])
        deadline = time.monotonic() + 15  # usage is written in batches
        while not (rows := http.get("/usage", params={"model": "remote-chat"}).json()["data"]):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert [(r["user_id"], r["key_id"]) for r in rows] == [(user["id"], key["id"])]
        assert rows[0]["id"] >= BEYOND_32_BITS

        dataset = import_file(http, "avis", MESSAGES.with_name("small.jsonl"),
                              content=jsonl([{"id": "m1", "text": "Personne ne répond au téléphone."}]))
        analysis = http.post("/feedback/analyses", json={"dataset": dataset["id"], "engine": "llm",
                                                         "model": "remote-chat"}).json()
        assert min(dataset["id"], analysis["id"]) >= BEYOND_32_BITS
        assert wait_analysis(http, analysis["id"], timeout_s=120)["status"] == "done"
        assert http.delete(f"/documents/{document['id']}").status_code == 204
        assert admin.delete(f"/users/{user['id']}").status_code == 204
        http.close()
        admin.close()
    finally:
        stop(server.process)
