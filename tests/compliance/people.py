"""People with data in every store of a really running platform, each marked by canaries: unique random
strings in what they wrote or uploaded, to be looked for afterwards in the database, the data directory
and the logs."""
from __future__ import annotations

import asyncio
import concurrent.futures
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import TEST_LIMITS, _on_postgres, database_url
from tests.support.servers import SOCLE, Server, start_server, stop

PASSWORD = "un mot de passe bien long"
ENV = {**TEST_LIMITS, "SOCLE_UI_COOKIE_SECURE": "false", "SOCLE_INGESTION_WORKERS": "1"}


def canary(kind: str) -> str:
    return f"canari{kind}{secrets.token_hex(8)}"


@dataclass
class Person:
    id: int
    email: str
    name: str
    key: str
    canaries: dict[str, str] = field(default_factory=dict)
    collection_ids: list[int] = field(default_factory=list)
    document_ids: list[int] = field(default_factory=list)
    dataset_ids: list[int] = field(default_factory=list)

    def api(self, server: Server) -> httpx.Client:
        return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {self.key}"}, timeout=120)

    @property
    def marks(self) -> list[str]:
        """What must vanish with the person: e-mail, name and every canary."""
        return [self.email, self.name, *self.canaries.values()]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def platform_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                    catalogue: Path) -> Iterator[Server]:
    """A server of this module's own (its data directory and database hold nothing but what it does)."""
    if request.param == "sqlite":
        server = start_server(tmp_path_factory.mktemp("compliance-sqlite"), config=catalogue, extra_env=ENV)
        yield server
        stop(server.process)
        return
    admin_dsn = request.getfixturevalue("postgres_admin")
    name = f"socle_compliance_{secrets.token_hex(4)}"
    _on_postgres(admin_dsn, f'CREATE DATABASE "{name}"')
    server = start_server(tmp_path_factory.mktemp("compliance-postgres"), config=catalogue,
                          database_url=database_url(admin_dsn, name), extra_env=ENV)
    yield server
    stop(server.process)
    _on_postgres(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def admin_api(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"},
                        timeout=120)


def new_person(server: Server, admin: httpx.Client, group: str) -> Person:
    """A user of ``group`` with data everywhere: a private collection and one shared with the group, each
    with an ingested document; a conversation in the web UI; an API call (a usage row); a feedback dataset;
    a quota rule on their account and one on their key; a web session."""
    tag = secrets.token_hex(4)
    email, name = f"agent-{tag}@ministere.gouv.fr", f"Nomcanari{secrets.token_hex(6)}"
    created = admin.post("/users", json={"email": email, "name": name, "groups": [group]})
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    key = admin.post("/keys", json={"user_id": user_id, "name": f"cle {tag}"})
    assert key.status_code == 201, key.text
    person = Person(user_id, email, name, key.json()["key"])
    person.canaries = {kind: canary(kind) for kind in ("collection", "document", "shared", "message", "feedback")}
    for quota in ({"scope": "user", "subject": str(user_id), "requests_per_day": 1000},
                  {"scope": "key", "subject": str(key.json()["id"]), "requests_per_day": 1000}):
        assert admin.post("/quotas", json=quota).status_code == 201
    group_id = next(g["id"] for g in admin.get("/groups").json()["data"] if g["name"] == group)
    with person.api(server) as http:
        for collection, body in (({"name": f"Collection {person.canaries['collection']}"}, "document"),
                                 ({"name": f"Partagée {tag}", "visibility": "group", "group_id": group_id}, "shared")):
            answer = http.post("/collections", json=collection)
            assert answer.status_code == 201, answer.text
            person.collection_ids.append(answer.json()["id"])
            text = f"# Note {tag}\n\nLe dossier de {name} porte la référence {person.canaries[body]}.\n"
            uploaded = http.post("/documents", data={"collection": str(answer.json()["id"])},
                                 files={"file": (f"note-{body}.md", text.encode())})
            assert uploaded.status_code == 201, uploaded.text
            person.document_ids.append(uploaded.json()["id"])
        for document_id in person.document_ids:
            wait_ready(http, document_id)
        chat = http.post("/chat/completions", json={"model": "remote-chat", "messages": [
            {"role": "user", "content": "Bonjour"}]})
        assert chat.status_code == 200, chat.text
        csv = f"id,text\nM-{tag},Mon dossier {person.canaries['feedback']} attend depuis trois mois\n"
        dataset = http.post("/feedback/datasets", data={"name": f"Avis {tag}"},
                            files={"file": ("avis.csv", csv.encode())})
        assert dataset.status_code == 201, dataset.text
        person.dataset_ids.append(dataset.json()["id"])
    chat_in_the_ui(server, person)
    return person


def wait_ready(http: httpx.Client, document_id: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = http.get(f"/documents/{document_id}").json()["status"]
        if status == "ready":
            return
        assert status in ("queued", "processing"), status
        time.sleep(0.2)
    raise AssertionError(f"document {document_id} not ingested in {timeout_s} s")


def chat_in_the_ui(server: Server, person: Person) -> None:
    """Sign in with a password (set as an operator does) and chat: a saved conversation and a web session."""
    done = subprocess.run([str(SOCLE), "users", "set-password", person.email, "--password-stdin"],
                          input=PASSWORD + "\n", env=server.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with httpx.Client(base_url=server.url, timeout=120) as browser:
        form = browser.get("/ui/connexion")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        signed_in = browser.post("/ui/connexion", data={"email": person.email, "password": PASSWORD,
                                                        "csrf_token": token.group(1)})
        assert signed_in.status_code == 303, signed_in.text
        page = browser.get("/ui/chat")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf is not None
        answer = browser.post("/ui/api/chat", headers={"x-csrf-token": csrf.group(1)},
                              json={"model": "remote-chat", "content": f"Où en est {person.canaries['message']} ?"})
        assert answer.status_code == 200, answer.text
        assert browser.get("/ui/chat").text.count(person.canaries["message"]) >= 1  # the conversation is saved


def database_text(server: Server) -> str:
    """Everything the database holds, as text: on SQLite the bytes of its files (the main file and its
    write-ahead log, free pages included); on PostgreSQL every row of every table."""
    if not server.database_url:
        return "".join((server.data_dir / name).read_bytes().decode("latin-1")
                       for name in ("socle.db", "socle.db-wal") if (server.data_dir / name).exists())

    async def dump() -> str:
        dsn = server.database_url.replace("postgresql+asyncpg://", "postgresql://")
        connection = await asyncpg.connect(dsn)
        try:
            tables = [row["table_name"] for row in await connection.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
                "AND table_type = 'BASE TABLE'")]
            assert "users" in tables and "chunks" in tables
            parts = []
            for table in tables:
                rows = await connection.fetch(f'SELECT t::text AS row FROM "{table}" t')
                parts += [row["row"] for row in rows]
            return "\n".join(parts)
        finally:
            await connection.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, dump()).result()


def files_text(server: Server) -> str:
    """Every file of the data directory (uploads, caches, the server's log...), as bytes."""
    return "".join(path.read_bytes().decode("latin-1") for path in sorted(server.data_dir.rglob("*"))
                   if path.is_file())


def found(marks: list[str], text: str) -> list[str]:
    return [mark for mark in marks if mark in text or mark.lower() in text]
