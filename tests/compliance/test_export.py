"""Access and portability (GDPR art. 15 and 20), on SQLite and PostgreSQL: a person downloads one archive of
everything the platform holds about them — from the API, from "Mon compte", or produced by an
administrator (API and CLI) — holding their canaries and nothing of anyone else's."""
from __future__ import annotations

import io
import json
import re
import secrets
import zipfile
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.compliance.people import (
    PASSWORD,
    Person,
    admin_api,
    found,
    new_person,
    platform_server,  # noqa: F401 - the fixture
)
from tests.support.servers import Server
from tests.ui.conftest import Account, check_page, chromium, sign_in


def opened(content: bytes) -> tuple[dict[str, Any], dict[str, bytes], str]:
    """The archive's JSON, its other files, and all of it as text (to look for marks)."""
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(entries.pop("donnees.json"))
    text = json.dumps(data, ensure_ascii=False) + "".join(v.decode("latin-1") for v in entries.values())
    return data, entries, text


def check_archive(content: bytes, person: Person, other: Person) -> dict[str, Any]:
    data, files, text = opened(content)
    assert found(person.marks, text) == person.marks
    assert found(other.marks, text) == []
    assert person.key not in text and person.key.split("-")[-1] not in text  # never a key's secret
    assert data["format"] == "socle-export/1" and data["profile"]["email"] == person.email
    assert [k["prefix"] for k in data["api_keys"]] == [person.key[:len(data["api_keys"][0]["prefix"])]]
    assert person.canaries["message"] in data["conversations"][0]["messages"][0]["content"]
    assert [c["id"] for c in data["collections"]] == person.collection_ids
    assert person.canaries["document"] in data["collections"][0]["documents"][0]["chunks"][0]["text"]
    assert person.canaries["feedback"] in data["feedback_datasets"][0]["items"][0]["text"]
    assert data["usage"] and all("user_id" not in row for row in data["usage"])
    assert {q["scope"] for q in data["quotas"]} == {"user", "key"}
    assert data["web_sessions"] and "data.exported" in {e["action"] for e in data["audit_events_about"]}
    return {"data": data, "files": files}


def test_a_person_downloads_everything_about_them_and_nothing_of_others(platform_server: Server,  # noqa: F811
                                                                        tmp_path: Path) -> None:
    server = platform_server
    group = f"service-{secrets.token_hex(3)}"
    with admin_api(server) as admin:
        assert admin.post("/groups", json={"name": group}).status_code == 201
        person, other = new_person(server, admin, group), new_person(server, admin, group)
        # An upload still waiting for its ingestion is in the archive as it was sent.
        waiting = server.data_dir / "documents" / str(person.document_ids[0])
        waiting.write_bytes(f"en attente {person.canaries['document']}".encode())
        # An ingested document's original is kept, and is theirs too, as it was sent.
        original = server.data_dir / "documents" / str(person.document_ids[1])
        kept = {f"fichiers/{person.document_ids[1]}-note-shared.md": original.read_bytes()}
        assert person.canaries["shared"].encode() in original.read_bytes()
        try:
            with person.api(server) as http:
                mine = http.get("/me/export")
                assert mine.status_code == 200, mine.text
                assert mine.headers["content-type"] == "application/zip"
                assert "attachment" in mine.headers["content-disposition"]
                files = check_archive(mine.content, person, other)["files"]
                assert files == {f"fichiers/{person.document_ids[0]}-note-document.md": waiting.read_bytes(), **kept}

                refused = http.get(f"/users/{other.id}/export")  # someone else's: users:admin only
                assert refused.status_code == 403, refused.text
                assert refused.json()["error"]["code"] == "insufficient_permissions"
        finally:
            waiting.unlink()

        by_admin = admin.get(f"/users/{person.id}/export")
        assert by_admin.status_code == 200
        assert check_archive(by_admin.content, person, other)["files"] == kept
        missing = admin.get("/users/999999999/export")
        assert missing.status_code == 404 and missing.json()["error"]["param"] == "user_id"

    out = tmp_path / "donnees.zip"
    done = server.cli("users", "export", person.email, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert out.stat().st_mode & 0o077 == 0  # personal data: its owner's only
    check_archive(out.read_bytes(), person, other)

    with httpx.Client(base_url=server.url, timeout=120) as browser:
        form = browser.get("/ui/connexion")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        assert browser.post("/ui/connexion", data={"email": person.email, "password": PASSWORD,
                                                   "csrf_token": token.group(1)}).status_code == 303
        account = browser.get("/ui/compte")
        assert account.status_code == 200 and "Mon compte" in account.text and person.email in account.text
        assert 'href="/ui/compte/donnees"' in account.text and "365 jours" in account.text
        download = browser.get("/ui/compte/donnees")
        assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
        check_archive(download.content, person, other)
        assert browser.get(f"/ui/admin/utilisateurs/{other.id}/donnees").status_code == 403


def test_the_account_page_is_accessible_and_downloads_the_archive(platform_server: Server) -> None:  # noqa: F811
    """In a real browser: "Mon compte" is reached from the header, passes axe-core, and its button downloads."""
    server = platform_server
    with admin_api(server) as admin:
        group = f"service-{secrets.token_hex(3)}"
        assert admin.post("/groups", json={"name": group}).status_code == 201
        person = new_person(server, admin, group)
    with chromium() as browser:
        context = browser.new_context(base_url=server.url, locale="fr-FR", viewport={"width": 1280, "height": 900},
                                      accept_downloads=True)
        page = context.new_page()
        sign_in(page, Account(person.id, person.email, PASSWORD))
        page.get_by_role("link", name=person.email).click()
        expect(page).to_have_url("/ui/compte")
        expect(page.get_by_role("heading", level=1)).to_have_text("Mon compte")
        check_page(page, "compte")
        with page.expect_download() as download:
            page.get_by_role("link", name="Télécharger mes données").click()
        content = Path(download.value.path()).read_bytes()
        context.close()
    _, _, text = opened(content)
    assert found(person.marks, text) == person.marks
