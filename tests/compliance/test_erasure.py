"""Erasure (GDPR art. 17) end to end, on SQLite and PostgreSQL: after deleting a user, neither the
database (SQLite: its files, free pages and write-ahead log included; PostgreSQL: every row of every
table), nor the data directory, nor the server's log holds their e-mail, name or any canary they wrote or
uploaded; their usage is kept under a pseudonym; another user's data is untouched."""
from __future__ import annotations

import asyncio
import concurrent.futures
import io
import re
import secrets
import subprocess
import time
import zipfile

import httpx
from playwright.sync_api import expect
from sqlalchemy import text

from socle.db.session import create_engine
from tests.compliance.people import (
    PASSWORD,
    Person,
    admin_api,
    database_text,
    files_text,
    found,
    new_person,
    platform_server,  # noqa: F401 - the fixture
)
from tests.support.servers import SOCLE, Server
from tests.ui.conftest import Account, check_page, chromium, sign_in


def usage_user_ids(server: Server) -> list[int]:
    url = server.database_url or f"sqlite+aiosqlite:///{server.data_dir / 'socle.db'}"

    async def read() -> list[int]:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                return [int(row[0]) for row in await connection.execute(text("SELECT user_id FROM usage"))]
        finally:
            await engine.dispose()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, read()).result()


def test_deleting_a_user_erases_them_from_every_store(platform_server: Server) -> None:  # noqa: F811
    server = platform_server
    group = f"service-{secrets.token_hex(3)}"
    with admin_api(server) as admin:
        assert admin.post("/groups", json={"name": group}).status_code == 201
        erased, other = new_person(server, admin, group), new_person(server, admin, group)
        assert found(erased.marks, database_text(server)) == erased.marks  # the scan finds what is there
        assert erased.id in usage_user_ids(server)

        assert admin.delete(f"/users/{erased.id}").status_code == 204

        assert found(erased.marks, database_text(server)) == []
        assert found(erased.marks, files_text(server)) == []  # uploads, caches and the server's log
        assert admin.get(f"/users/{erased.id}").status_code == 404
        assert admin.delete(f"/users/{erased.id}").status_code == 404
        with erased.api(server) as gone:
            assert gone.get("/models").status_code == 401  # their key went with them
        users = usage_user_ids(server)
        assert erased.id not in users and any(user_id < 0 for user_id in users)  # kept, pseudonymised
        quotas = admin.get("/quotas").json()["data"]
        assert all(q["subject"] != str(erased.id) for q in quotas if q["scope"] == "user")
        with other.api(server) as http:  # the group's collection that the erased person owned went with them
            shared = erased.collection_ids[1]
            assert shared not in [c["id"] for c in http.get("/collections").json()["data"]]
            assert http.get(f"/collections/{shared}").status_code == 404
        assert_intact(server, other, admin)


def assert_intact(server: Server, person: Person, admin: httpx.Client) -> None:
    """Everything of ``person`` is still there and theirs."""
    assert found(person.marks, database_text(server)) == person.marks
    with person.api(server) as http:
        names = [c["name"] for c in http.get("/collections").json()["data"]]
        assert f"Collection {person.canaries['collection']}" in names
        for document_id, canary in zip(person.document_ids, ("document", "shared"), strict=True):
            chunks = http.get(f"/chunks/{document_id}").json()["data"]
            assert any(person.canaries[canary] in chunk["content"] for chunk in chunks), chunks
        hits = http.post("/search", json={"prompt": person.canaries["document"],
                                          "collections": person.collection_ids, "method": "lexical"})
        assert hits.status_code == 200 and hits.json()["data"], hits.text
        assert [d["id"] for d in http.get("/feedback/datasets").json()["data"]] == person.dataset_ids
    assert person.id in usage_user_ids(server)
    assert any(q["subject"] == str(person.id) for q in admin.get("/quotas").json()["data"] if q["scope"] == "user")


def test_one_cannot_erase_oneself_and_a_user_cannot_erase_anyone(platform_server: Server) -> None:  # noqa: F811
    with admin_api(platform_server) as admin:
        me = admin.get("/me").json()["id"]
        answer = admin.delete(f"/users/{me}")
        assert answer.status_code == 400 and answer.json()["error"]["param"] == "user_id"
        group = f"service-{secrets.token_hex(3)}"
        assert admin.post("/groups", json={"name": group}).status_code == 201
        created = admin.post("/users", json={"email": f"agent-{secrets.token_hex(4)}@ministere.gouv.fr"}).json()
        key = admin.post("/keys", json={"user_id": created["id"]}).json()["key"]
    with httpx.Client(base_url=platform_server.base_url, headers={"Authorization": f"Bearer {key}"}) as user:
        answer = user.delete(f"/users/{me}")
        assert answer.status_code == 403 and answer.json()["error"]["code"] == "insufficient_permissions"


def test_the_console_and_the_admin_pages_erase_too(platform_server: Server) -> None:  # noqa: F811
    """``socle users delete`` and the administration page's button go through the same erasure."""
    server = platform_server
    group = f"service-{secrets.token_hex(3)}"
    with admin_api(server) as admin:
        assert admin.post("/groups", json={"name": group}).status_code == 201
        by_console, by_page = new_person(server, admin, group), new_person(server, admin, group)
        admin_email = admin.get("/me").json()["email"]

    done = server.cli("users", "delete", by_console.email)
    assert done.returncode == 0, done.stderr
    assert found(by_console.marks, database_text(server)) == []

    done = subprocess.run([str(SOCLE), "users", "set-password", admin_email, "--password-stdin"],
                          input=PASSWORD + "\n", env=server.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with chromium() as real:  # the pages as a browser shows them, checked by axe-core
        context = real.new_context(base_url=server.url, locale="fr-FR", viewport={"width": 1280, "height": 900})
        page_ = context.new_page()
        sign_in(page_, Account(0, admin_email, PASSWORD))
        page_.goto(f"/ui/admin/utilisateurs/{by_page.id}")
        expect(page_.get_by_role("button", name="Supprimer le compte et ses données")).to_be_visible()
        check_page(page_, "admin_utilisateur_donnees")
        page_.get_by_role("link", name="Conservation des données").click()
        expect(page_.get_by_role("heading", level=1)).to_have_text("Conservation des données")
        check_page(page_, "admin_conservation")
        context.close()
    with httpx.Client(base_url=server.url, timeout=120) as browser:
        form = browser.get("/ui/connexion")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        assert browser.post("/ui/connexion", data={"email": admin_email, "password": PASSWORD,
                                                   "csrf_token": token.group(1)}).status_code == 303
        page = browser.get(f"/ui/admin/utilisateurs/{by_page.id}")
        assert "Supprimer le compte et ses données" in page.text
        archive = browser.get(f"/ui/admin/utilisateurs/{by_page.id}/donnees")  # their data, before it goes
        assert archive.status_code == 200 and by_page.canaries["message"].encode() in _unzipped(archive.content)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf is not None
        answer = browser.post(f"/ui/admin/utilisateurs/{by_page.id}/supprimer", data={"csrf_token": csrf.group(1)})
        assert answer.status_code == 303 and answer.headers["location"].endswith("?ok=utilisateur-supprime")
        assert browser.get(f"/ui/admin/utilisateurs/{by_page.id}").status_code == 404
        deadline = time.monotonic() + 60
        while "Dernier passage" not in (retention := browser.get("/ui/admin/conservation")).text:
            assert time.monotonic() < deadline, "the server never ran the day's retention job"
            time.sleep(0.5)
        assert retention.status_code == 200 and "1825 jours" in retention.text
    assert found(by_page.marks, database_text(server)) == []
    assert found(by_page.marks + by_console.marks, files_text(server)) == []


def _unzipped(content: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return b"".join(archive.read(name) for name in archive.namelist())
