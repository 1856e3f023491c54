"""Identity through the API and the CLI, on SQLite and on PostgreSQL: keys, users, groups, roles."""
from __future__ import annotations

import asyncio
import secrets
import time
import unicodedata
from datetime import UTC, datetime, timedelta

import httpx
import openai
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.servers import Server


def _email() -> str:
    return f"agent-{secrets.token_hex(4)}@ministere.gouv.fr"


def _user_with_key(admin: httpx.Client, role: str = "user") -> tuple[dict, str]:
    user = admin.post("/users", json={"email": _email(), "name": "Agent", "role": role}).json()
    key = admin.post("/keys", json={"name": "k", "user_id": user["id"]}).json()
    return user, key["key"]


def _as(server: Server, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def _sdk(server: Server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)


def _database_url(server: Server) -> str:
    return server.database_url or f"sqlite+aiosqlite:///{server.data_dir / 'socle.db'}"


def _rows(server: Server, query: str) -> list[tuple]:
    async def read() -> list[tuple]:
        engine = create_async_engine(_database_url(server))
        try:
            async with engine.connect() as connection:
                return [tuple(row) for row in await connection.execute(text(query))]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_missing_or_wrong_key_is_a_401(any_server: Server) -> None:
    assert httpx.get(any_server.base_url + "/models").status_code == 401
    for key in ("sk-socle-000000000000_nope", "not-a-key", any_server.admin_key[:-2] + "xx"):
        response = httpx.get(any_server.base_url + "/models", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 401, key
        assert response.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        _sdk(any_server, "sk-socle-0123456789ab_wrong").models.list()


def test_revoked_key_is_a_401(any_server: Server, admin: httpx.Client) -> None:
    _, key = _user_with_key(admin)
    assert _sdk(any_server, key).models.list().data
    with _as(any_server, key) as own:
        key_id = own.get("/keys").json()["data"][0]["id"]
        assert own.delete(f"/keys/{key_id}").json()["revoked_at"]
    with pytest.raises(openai.AuthenticationError):
        _sdk(any_server, key).models.list()


def test_expired_key_is_a_401(any_server: Server, admin: httpx.Client) -> None:
    user = admin.post("/users", json={"email": _email()}).json()
    expires = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    key = admin.post("/keys", json={"user_id": user["id"], "expires_at": expires}).json()["key"]
    assert _sdk(any_server, key).models.list().data
    time.sleep(2.5)
    with pytest.raises(openai.AuthenticationError) as error:
        _sdk(any_server, key).models.list()
    assert error.value.body["code"] == "expired_api_key"


def test_disabled_user_is_locked_out(any_server: Server, admin: httpx.Client) -> None:
    user, key = _user_with_key(admin)
    assert _sdk(any_server, key).models.list().data
    assert admin.patch(f"/users/{user['id']}", json={"is_active": False}).status_code == 200
    with pytest.raises(openai.AuthenticationError):
        _sdk(any_server, key).models.list()


def test_a_user_cannot_administer(any_server: Server, admin: httpx.Client) -> None:
    _, key = _user_with_key(admin)
    with _as(any_server, key) as user:
        for method, path, body in [("GET", "/users", None), ("POST", "/users", {"email": _email()}),
                                   ("GET", "/roles", None), ("POST", "/groups", {"name": "g"}),
                                   ("POST", "/roles", {"name": "x", "permissions": []})]:
            response = user.request(method, path, json=body)
            assert response.status_code == 403, path
            assert response.json()["error"]["code"] == "insufficient_permissions"
        # ... but uses the models and manages its own keys.
        assert user.get("/models").status_code == 200
        assert user.get("/me").json()["role"] == "user"


def test_others_keys_are_not_found(any_server: Server, admin: httpx.Client) -> None:
    _, alice = _user_with_key(admin)
    bob_user, bob = _user_with_key(admin)
    with _as(any_server, bob) as as_bob:
        bob_key_id = as_bob.get("/keys").json()["data"][0]["id"]
    with _as(any_server, alice) as as_alice:
        assert as_alice.delete(f"/keys/{bob_key_id}").status_code == 404
        assert all(k["user_id"] != bob_user["id"] for k in as_alice.get("/keys").json()["data"])
        assert as_alice.post("/keys", json={"user_id": bob_user["id"]}).status_code == 403
        assert as_alice.get(f"/users/{bob_user['id']}").status_code == 403
    assert _sdk(any_server, bob).models.list().data  # untouched


def test_keys_are_stored_only_as_hashes(any_server: Server, admin: httpx.Client) -> None:
    created = admin.post("/keys", json={"name": "hash-check"}).json()
    secret = created["key"].split("_", 1)[1]  # the public id has no "_"; the secret may
    listed = admin.get("/keys").json()["data"]
    assert all("key" not in k for k in listed)
    rows = _rows(any_server, "SELECT * FROM api_keys")
    dump = repr(rows)
    assert secret not in dump and created["key"] not in dump
    assert any_server.admin_key.split("_", 1)[1] not in dump
    hashes = _rows(any_server, f"SELECT secret_hash FROM api_keys WHERE id = {created['id']}")
    assert len(hashes[0][0]) == 64


def test_users_groups_and_roles(any_server: Server, admin: httpx.Client) -> None:
    role = admin.post("/roles", json={"name": f"reader-{secrets.token_hex(3)}",
                                      "permissions": ["models:read"]}).json()
    group = admin.post("/groups", json={"name": f"dgfip-{secrets.token_hex(3)}"}).json()
    user = admin.post("/users", json={"email": _email(), "role": role["name"], "groups": [group["name"]]})
    assert user.status_code == 201
    user = user.json()
    assert user["role"] == role["name"] and user["groups"] == [group["name"]]
    assert admin.post("/users", json={"email": user["email"]}).status_code == 409
    assert admin.post("/roles", json={"name": "bad", "permissions": ["fly"]}).status_code == 400

    key = admin.post("/keys", json={"user_id": user["id"]}).json()["key"]
    reader = _sdk(any_server, key)
    assert reader.models.list().data
    with pytest.raises(openai.PermissionDeniedError):  # models:read without models:use
        reader.chat.completions.create(model="remote-chat", messages=[{"role": "user", "content": "x"}])

    admin.patch(f"/roles/{role['id']}", json={"permissions": ["models:read", "models:use"]})
    assert reader.chat.completions.create(model="remote-chat",
                                          messages=[{"role": "user", "content": "x"}]).choices

    assert admin.delete(f"/groups/{group['id']}/members/{user['id']}").json()["members"] == []
    assert admin.put(f"/groups/{group['id']}/members/{user['id']}").json()["members"] == [user["id"]]
    assert admin.delete(f"/roles/{role['id']}").status_code == 409  # still given
    builtin = next(r for r in admin.get("/roles").json()["data"] if r["name"] == "user")
    assert admin.delete(f"/roles/{builtin['id']}").status_code == 400
    assert admin.delete(f"/users/{user['id']}").status_code == 204
    assert admin.get(f"/users/{user['id']}").status_code == 404
    assert admin.delete(f"/roles/{role['id']}").status_code == 204


def test_look_alike_addresses_and_names_are_one_or_refused(any_server: Server, admin: httpx.Client) -> None:
    tag = secrets.token_hex(3)
    composed = f"élodie-{tag}@ministère.gouv.fr"
    decomposed = unicodedata.normalize("NFD", composed)
    created = admin.post("/users", json={"email": decomposed})
    assert created.status_code == 201 and created.json()["email"] == composed
    for same in (composed, f"ÉLODIE-{tag}@MINISTÈRE.GOUV.FR", f"élodie-{tag}@xn--ministre-60a.gouv.fr",
                 "ａｄｍｉｎ@localhost"):  # full width folds to the first admin's address
        assert admin.post("/users", json={"email": same}).status_code == 409, same
    refused = admin.post("/users", json={"email": "\u0430dmin@localhost"})  # a Cyrillic а, then Latin
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "confusable"
    assert admin.post("/users", json={"email": f"agent-{tag}@p\u0430ris.fr"}).status_code == 400
    one_alphabet = f"пример-{secrets.randbelow(10**9)}@пример.рф"
    assert admin.post("/users", json={"email": one_alphabet}).status_code == 201
    cli = any_server.cli("users", "create", unicodedata.normalize("NFD", composed).upper())
    assert cli.returncode == 1 and "already exists" in cli.stderr

    group = admin.post("/groups", json={"name": unicodedata.normalize("NFD", f"Équipe-{tag}")})
    assert group.status_code == 201 and group.json()["name"] == f"Équipe-{tag}"
    assert admin.post("/groups", json={"name": f"Équipe-{tag}"}).status_code == 409
    assert admin.post("/groups", json={"name": f"ＤＧＦＩＰ-{tag}"}).json()["name"] == f"DGFIP-{tag}"
    assert admin.post("/groups", json={"name": f"\u0430dmins-{tag}"}).status_code == 400
    member = admin.post("/users", json={"email": f"m-{tag}@x.gouv.fr",
                                        "groups": [unicodedata.normalize("NFD", f"Équipe-{tag}")]})
    assert member.status_code == 201, member.text
    assert admin.post("/collections", json={"name": "\u0421irculaires"}).status_code == 400  # a Cyrillic С
    assert admin.post("/collections", json={"name": "Циркуляры"}).status_code == 201


def test_a_new_user_never_takes_a_deleted_ones_id(any_server: Server, admin: httpx.Client) -> None:
    """The newest user deleted, the next one gets a new id: nothing that still names the deleted one (usage
    rows kept for accounting, a quota rule, quota counters) passes to the newcomer."""
    hello = [{"role": "user", "content": "x"}]
    leaver, key = _user_with_key(admin)
    _sdk(any_server, key).chat.completions.create(model="remote-chat", messages=hello)
    rule = admin.post("/quotas", json={"scope": "user", "subject": str(leaver["id"]),
                                       "requests_per_minute": 1})
    assert rule.status_code == 201, rule.text
    deadline = time.monotonic() + 15
    while not admin.get("/usage", params={"user_id": leaver["id"]}).json()["data"]:  # written in batches
        assert time.monotonic() < deadline, "the call's usage row was never written"
        time.sleep(0.2)
    assert admin.delete(f"/users/{leaver['id']}").status_code == 204

    newcomer, new_key = _user_with_key(admin)
    assert newcomer["id"] > leaver["id"]
    with _as(any_server, new_key) as own:
        assert own.get("/usage").json()["data"] == []
    assert [q for q in admin.get("/quotas").json()["data"] if q["subject"] == str(newcomer["id"])] == []
    sdk = _sdk(any_server, new_key)
    for _ in range(2):  # the leaver's one request a minute binds no one else
        assert sdk.chat.completions.create(model="remote-chat", messages=hello).choices


def test_cli_manages_users_and_keys(any_server: Server) -> None:
    email = _email()
    created = any_server.cli("users", "create", email, "--name", "Agent CLI")
    assert created.returncode == 0, created.stderr
    key = any_server.cli("keys", "create", "--user", email, "--name", "cli").stdout.strip()
    assert key.startswith("sk-socle-")
    assert _sdk(any_server, key).models.list().data
    listed = any_server.cli("keys", "list", "--user", email)
    assert key[len("sk-socle-"):][:12] in listed.stdout and key not in listed.stdout
    duplicate = any_server.cli("users", "create", email)
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    row = next(line for line in listed.stdout.splitlines() if key[:21] in line)
    key_id = row.split("│")[1].strip()
    assert key_id.isdigit()
    assert any_server.cli("keys", "revoke", key_id).returncode == 0
    time.sleep(5.5)  # the server trusts a verified key for SOCLE_AUTH_CACHE_TTL_S (5 s) at most
    with pytest.raises(openai.AuthenticationError):
        _sdk(any_server, key).models.list()
