"""The audit trail through a really running server, on SQLite and on PostgreSQL: actions leave entries that
name people by id only, the chain verifies, tampering is found by ``socle audit verify``, concurrent appends
keep one chain, and only ``audit:read`` reads the trail."""
from __future__ import annotations

import asyncio
import concurrent.futures
import csv
import io
import json
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import _on_postgres, database_url
from tests.support.servers import SOCLE, Server, start_server, stop

CATALOGUE = """
models:
  - {{id: remote-chat, type: chat, backends: [{{type: openai, url: "{mock}/v1", model: mock-chat}}]}}
"""


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def audited(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            mock_backend: str) -> Iterator[Server]:
    """A server of this module's own: the tests below tamper with its trail."""
    config = tmp_path_factory.mktemp("audit-config") / "models.yaml"
    config.write_text(CATALOGUE.format(mock=mock_backend))
    url = None
    if request.param == "postgres":
        admin_dsn = request.getfixturevalue("postgres_admin")
        name = f"socle_audit_{secrets.token_hex(4)}"
        _on_postgres(admin_dsn, f'CREATE DATABASE "{name}"')
        url = database_url(admin_dsn, name)
    server = start_server(tmp_path_factory.mktemp(f"audit-{request.param}"), config=config, database_url=url,
                          extra_env={"SOCLE_INGESTION_WORKERS": "0", "SOCLE_FEEDBACK_WORKERS": "0",
                                     "SOCLE_UI_COOKIE_SECURE": "false", "SOCLE_UI_TRUSTED_PROXIES": "127.0.0.1"})
    yield server
    stop(server.process)
    if url is not None:
        _on_postgres(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def admin(audited: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=audited.base_url, headers={"Authorization": f"Bearer {audited.admin_key}"},
                      timeout=60) as http:
        yield http


def _email() -> str:
    return f"agent-{secrets.token_hex(4)}@ministere.gouv.fr"


def _as(server: Server, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def _sql(server: Server, statement: str, **params: Any) -> list[tuple[Any, ...]]:
    async def run() -> list[tuple[Any, ...]]:
        engine = create_async_engine(server.database_url or f"sqlite+aiosqlite:///{server.data_dir / 'socle.db'}")
        try:
            async with engine.begin() as connection:
                result = await connection.execute(text(statement), params)
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _events(admin: httpx.Client, **filters: Any) -> list[dict[str, Any]]:
    response = admin.get("/audit", params={"limit": 1000, **filters})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def _verify(server: Server) -> tuple[int, str]:
    done = server.cli("audit", "verify")
    return done.returncode, done.stdout + done.stderr


def test_actions_leave_entries_by_id_only_and_the_chain_verifies(audited: Server, admin: httpx.Client) -> None:
    me = admin.get("/me").json()
    email = _email()
    user = admin.post("/users", json={"email": email, "name": "Élodie Témoin", "role": "user"})
    assert user.status_code == 201, user.text
    user_id = user.json()["id"]
    key = admin.post("/keys", json={"name": "pour l'audit", "user_id": user_id}).json()
    assert admin.delete(f"/keys/{key['id']}").status_code == 200
    group = admin.post("/groups", json={"name": f"groupe-{secrets.token_hex(3)}"}).json()
    assert admin.put(f"/groups/{group['id']}/members/{user_id}").status_code == 200
    assert admin.patch(f"/users/{user_id}", json={"name": "Autre Nom"}).status_code == 200
    quota = admin.post("/quotas", json={"scope": "user", "subject": str(user_id), "requests_per_minute": 5})
    assert quota.status_code == 201, quota.text
    assert admin.get("/usage", params={"user_id": user_id}).status_code == 200  # someone else's usage
    published = admin.post("/collections", json={"name": f"notes-{secrets.token_hex(3)}", "visibility": "public"})
    assert published.status_code == 201, published.text

    events = _events(admin, since="2000-01-01T00:00:00Z")
    seen = {(e["action"], (e["target"] or {}).get("id")) for e in events}
    for expected in [("user.created", str(user_id)), ("key.created", str(key["id"])),
                     ("key.revoked", str(key["id"])), ("group.created", str(group["id"])),
                     ("group.member_added", str(group["id"])), ("user.updated", str(user_id)),
                     ("quota.created", str(quota.json()["id"])), ("data.read_others", str(user_id)),
                     ("collection.published", str(published.json()["id"]))]:
        assert expected in seen, expected
    created = next(e for e in events if e["action"] == "key.created" and e["target"]["id"] == str(key["id"]))
    assert created["actor"] == {"user_id": me["id"], "key_id": created["actor"]["key_id"], "email": me["email"],
                                "deleted": False}
    assert created["actor"]["key_id"] is not None  # the admin's key that did it
    assert created["address"] == "127.0.0.1" and created["channel"] == "api"
    assert created["details"]["owner_user_id"] == user_id

    stored = _sql(audited, "SELECT action, details, target_id FROM audit_events")
    assert stored and not any(email in str(row) or "Témoin" in str(row) or "Autre Nom" in str(row) for row in stored)
    code, output = _verify(audited)
    assert code == 0, output
    assert "intact" in output


def test_sign_ins_and_their_failures_are_recorded_with_the_clients_address(audited: Server,
                                                                          admin: httpx.Client) -> None:
    email, password = _email(), "un mot de passe bien long"
    user = admin.post("/users", json={"email": email}).json()
    done = subprocess.run([str(SOCLE), "users", "set-password", email, "--password-stdin"], input=password + "\n",
                          env=audited.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    behind_proxy = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}  # the proxy at 127.0.0.1 added the last
    with httpx.Client(base_url=audited.url, headers=behind_proxy) as browser:
        for attempt in ("wrong password", password):
            form = browser.get("/ui/connexion")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert token is not None
            browser.post("/ui/connexion", data={"email": email, "password": attempt, "csrf_token": token.group(1)})
    failed = [e for e in _events(admin, action="auth.sign_in_failed")
              if (e["target"] or {}).get("id") == str(user["id"])]
    assert len(failed) == 1 and failed[0]["details"] == {"method": "password", "reason": "wrong_password"}
    assert failed[0]["actor"]["user_id"] is None and failed[0]["address"] == "203.0.113.7"
    assert failed[0]["channel"] == "ui"
    signed_in = [e for e in _events(admin, action="auth.sign_in") if e["actor"]["user_id"] == user["id"]]
    assert len(signed_in) == 1 and signed_in[0]["address"] == "203.0.113.7" and signed_in[0]["actor"]["key_id"] is None


def test_a_deleted_actor_is_shown_by_number(audited: Server, admin: httpx.Client) -> None:
    deputy = admin.post("/users", json={"email": _email(), "role": "admin"}).json()
    key = admin.post("/keys", json={"user_id": deputy["id"]}).json()["key"]
    with _as(audited, key) as as_deputy:
        group = as_deputy.post("/groups", json={"name": f"groupe-{secrets.token_hex(3)}"}).json()
    assert admin.delete(f"/users/{deputy['id']}").status_code == 204
    entry = next(e for e in _events(admin, action="group.created") if e["target"]["id"] == str(group["id"]))
    assert entry["actor"]["user_id"] == deputy["id"]
    assert entry["actor"]["email"] is None and entry["actor"]["deleted"] is True
    exported = admin.get("/audit", params={"format": "csv", "action": "group."})
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    row = next(r for r in rows if r["target_id"] == str(group["id"]) and r["action"] == "group.created")
    assert row["actor"] == f"compte supprimé n°{deputy['id']}"
    assert any(e["action"] == "audit.exported" for e in _events(admin, action="audit."))


def test_only_audit_read_reads_the_trail(audited: Server, admin: httpx.Client) -> None:
    user = admin.post("/users", json={"email": _email(), "role": "user"}).json()
    user_key = admin.post("/keys", json={"user_id": user["id"]}).json()["key"]
    auditor = admin.post("/users", json={"email": _email(), "role": "auditor"}).json()
    auditor_key = admin.post("/keys", json={"user_id": auditor["id"]}).json()["key"]
    with _as(audited, user_key) as as_user:
        for params in ({}, {"format": "csv"}):
            refused = as_user.get("/audit", params=params)
            assert refused.status_code == 403, refused.text
            assert refused.json()["error"]["code"] == "insufficient_permissions"
    with _as(audited, auditor_key) as as_auditor:
        page = as_auditor.get("/audit", params={"limit": 2})
        assert page.status_code == 200 and len(page.json()["data"]) == 2 and page.json()["has_more"]
        assert as_auditor.get("/users").status_code == 403  # reads the trail, administers nothing
    bad = admin.get("/audit", params={"action": "key.created\x00"})
    assert bad.status_code == 400 and bad.json()["error"]["param"]
    for since in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00"):  # beyond datetime's range in UTC
        out_of_range = admin.get("/audit", params={"since": since})
        assert out_of_range.status_code == 422 and out_of_range.json()["error"]["param"] == "since"


def test_concurrent_appends_keep_one_chain(audited: Server, admin: httpx.Client) -> None:
    before = len(_events(admin, action="key.created"))
    user = admin.post("/users", json={"email": _email()}).json()

    def create(_: int) -> int:
        return admin.post("/keys", json={"user_id": user["id"]}).status_code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(create, range(48)))
    assert statuses == [201] * 48
    assert len(_events(admin, action="key.created")) == before + 48
    links = _sql(audited, "SELECT prev_hash FROM audit_events")
    assert len({link for (link,) in links}) == len(links)  # no two entries claim the same predecessor
    code, output = _verify(audited)
    assert code == 0, output


def test_tampering_is_detected_and_named(audited: Server, admin: httpx.Client) -> None:
    user = admin.post("/users", json={"email": _email()}).json()
    for _ in range(3):
        admin.post("/keys", json={"user_id": user["id"]})
    (target_id,) = _sql(audited, "SELECT id FROM audit_events WHERE action = 'key.created' ORDER BY id DESC "
                                 "LIMIT 1 OFFSET 1")[0]
    (original,) = _sql(audited, "SELECT details FROM audit_events WHERE id = :id", id=target_id)[0]
    original_text = original if isinstance(original, str) else json.dumps(original)  # PostgreSQL decodes it

    _sql(audited, "UPDATE audit_events SET details = :d WHERE id = :id", d='{"owner_user_id": 1}', id=target_id)
    code, output = _verify(audited)
    assert code == 1 and f"entry {target_id}" in output and "changed" in output, output
    _sql(audited, "UPDATE audit_events SET details = :d WHERE id = :id", d=original_text, id=target_id)
    assert _verify(audited)[0] == 0

    columns = "id, at, action, actor_user_id, actor_key_id, target_type, target_id, details, address, channel, " \
              "prev_hash, hash"
    saved = _sql(audited, f"SELECT {columns} FROM audit_events WHERE id = :id", id=target_id)[0]
    (next_id,) = _sql(audited, "SELECT min(id) FROM audit_events WHERE id > :id", id=target_id)[0]
    _sql(audited, "DELETE FROM audit_events WHERE id = :id", id=target_id)
    code, output = _verify(audited)
    assert code == 1 and f"entry {next_id}" in output and "deleted" in output, output

    values = dict(zip([c.strip() for c in columns.split(",")], saved, strict=True))
    values["details"] = original_text
    _sql(audited, f"INSERT INTO audit_events ({columns}) VALUES "
                  f"({', '.join(':' + c.strip() for c in columns.split(','))})", **values)
    assert _verify(audited)[0] == 0

    first, second = _sql(audited, "SELECT id, hash, prev_hash FROM audit_events WHERE id >= :id ORDER BY id LIMIT 2",
                         id=target_id)
    _sql(audited, "UPDATE audit_events SET id = -1 WHERE id = :a", a=first[0])  # swap two entries
    _sql(audited, "UPDATE audit_events SET id = :a WHERE id = :b", a=first[0], b=second[0])
    _sql(audited, "UPDATE audit_events SET id = :b WHERE id = -1", b=second[0])
    code, output = _verify(audited)
    assert code == 1 and f"entry {first[0]}" in output, output
    _sql(audited, "UPDATE audit_events SET id = -1 WHERE id = :a", a=first[0])  # and back
    _sql(audited, "UPDATE audit_events SET id = :a WHERE id = :b", a=first[0], b=second[0])
    _sql(audited, "UPDATE audit_events SET id = :b WHERE id = -1", b=second[0])
    assert _verify(audited)[0] == 0


def test_export_from_the_console(audited: Server, tmp_path: Path) -> None:
    out = tmp_path / "journal.csv"
    done = audited.cli("audit", "export", "--output", str(out), "--action", "user.")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert rows and {r["action"] for r in rows} <= {"user.created", "user.updated", "user.deleted",
                                                    "user.erased", "user.password_set"}
