"""Usage records: one per call, with the tokens the backend reported, on SQLite and PostgreSQL."""
from __future__ import annotations

import secrets
import time

import httpx
import openai

from tests.support.servers import Server


def _new_user(admin: httpx.Client) -> tuple[int, str]:
    user = admin.post("/users", json={"email": f"usage-{secrets.token_hex(4)}@interieur.gouv.fr"}).json()
    return user["id"], admin.post("/keys", json={"user_id": user["id"]}).json()["key"]


def _rows(server: Server, key: str, expected: int, **params: object) -> list[dict]:
    """The caller's usage rows, once the batch writer has written ``expected`` of them."""
    deadline = time.monotonic() + 15
    while True:
        rows = httpx.get(server.base_url + "/usage", params=params,
                         headers={"Authorization": f"Bearer {key}"}).json()["data"]
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_usage_rows_match_what_the_backend_reported(any_server: Server, admin: httpx.Client) -> None:
    user_id, key = _new_user(admin)
    client = openai.OpenAI(base_url=any_server.base_url, api_key=key, max_retries=0)
    messages = [{"role": "user", "content": "x"}]
    client.chat.completions.create(model="remote-chat", messages=messages)
    list(client.chat.completions.create(model="remote-chat", messages=messages, stream=True))  # usage not asked
    streamed = list(client.chat.completions.create(model="remote-chat", messages=messages, stream=True,
                                                   stream_options={"include_usage": True}))
    client.embeddings.create(model="remote-embed", input=["a", "b", "c"])

    rows = sorted(_rows(any_server, key, 4), key=lambda r: r["id"])
    assert [(r["endpoint"], r["prompt_tokens"], r["completion_tokens"]) for r in rows] == [
        ("chat/completions", 11, 7), ("chat/completions", 11, 5), ("chat/completions", 11, 5), ("embeddings", 3, 0)]
    assert streamed[-1].usage.completion_tokens == 5
    assert all(r["user_id"] == user_id and r["status"] == "ok" and r["model"] in ("remote-chat", "remote-embed")
               for r in rows)
    assert all(r["latency_ms"] > 0 for r in rows)
    assert all(r["ttft_ms"] is not None and r["ttft_ms"] <= r["latency_ms"] for r in rows[1:3])
    assert all(r["key_id"] is not None for r in rows)
    assert abs(rows[0]["cost"] - (11 * 2.0 + 7 * 6.0) / 1e6) < 1e-12  # the catalogue's prices
    assert rows[3]["cost"] == 0.0  # remote-embed has no price


def test_the_embedded_model_usage_has_cost_and_carbon(any_server: Server, admin: httpx.Client) -> None:
    _, key = _new_user(admin)
    client = openai.OpenAI(base_url=any_server.base_url, api_key=key, max_retries=0)
    reply = client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": "Hi"}],
                                           max_tokens=8)
    [row] = _rows(any_server, key, 1)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (reply.usage.prompt_tokens,
                                                                reply.usage.completion_tokens)
    assert row["backend"] == "smollm2-135m#0"  # its public label
    assert row["energy_kwh"] > 0 and row["co2_kg"] > 0


def test_failed_and_refused_calls_are_recorded_with_their_status(any_server: Server, admin: httpx.Client) -> None:
    _, key = _new_user(admin)
    client = openai.OpenAI(base_url=any_server.base_url, api_key=key, max_retries=0)
    try:
        client.chat.completions.create(model="remote-fail", messages=[{"role": "user", "content": "x"}])
    except openai.InternalServerError:
        pass
    [row] = _rows(any_server, key, 1)
    assert row["status"] == "bad_gateway" and row["completion_tokens"] == 0


def test_a_user_sees_only_their_own_usage_and_admins_sum_it(any_server: Server, admin: httpx.Client) -> None:
    alice_id, alice = _new_user(admin)
    bob_id, bob = _new_user(admin)
    for key, calls in ((alice, 2), (bob, 3)):
        client = openai.OpenAI(base_url=any_server.base_url, api_key=key, max_retries=0)
        for _ in range(calls):
            client.chat.completions.create(model="remote-chat", messages=[{"role": "user", "content": "x"}])
    assert {r["user_id"] for r in _rows(any_server, alice, 2)} == {alice_id}
    assert len(_rows(any_server, bob, 3)) == 3
    # Asking for someone else's usage without the permission still yields only one's own (filtered in SQL).
    assert _rows(any_server, bob, 0, user_id=alice_id) == []

    summary = admin.get("/usage/summary", params={"group_by": "user,model"}).json()
    by_user = {row["user"]: row for row in summary["data"] if row["user"] in (alice_id, bob_id)}
    assert by_user[alice_id]["requests"] == 2 and by_user[bob_id]["requests"] == 3
    assert by_user[bob_id]["total_tokens"] == 3 * 18 and by_user[bob_id]["model"] == "remote-chat"
    days = admin.get("/usage/summary", params={"group_by": "day", "user_id": bob_id}).json()["data"]
    assert len(days) == 1 and len(days[0]["day"]) == 10 and days[0]["requests"] == 3
    assert admin.get("/usage/summary", params={"group_by": "colour"}).status_code == 400


def test_nothing_is_lost_on_a_clean_shutdown(tmp_path, catalogue) -> None:
    from tests.e2e.test_identity import _rows as database_rows
    from tests.support.servers import start_server, stop

    server = start_server(tmp_path / "data", config=catalogue,
                          extra_env={"SOCLE_USAGE_FLUSH_INTERVAL_S": "3600", "SOCLE_USAGE_BATCH_SIZE": "100000"})
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key=server.admin_key, max_retries=0)
        for _ in range(5):
            client.chat.completions.create(model="remote-chat", messages=[{"role": "user", "content": "x"}])
        assert database_rows(server, "SELECT count(*) FROM usage") == [(0,)]  # still waiting in memory
    finally:
        stop(server.process)
    assert server.process.returncode in (0, -15)  # uvicorn re-raises SIGTERM once it has shut down cleanly
    assert database_rows(server, "SELECT count(*), sum(completion_tokens) FROM usage") == [(5, 35)]
    listed = server.cli("usage", "--by", "model")
    assert listed.returncode == 0, listed.stderr
    assert "remote-chat" in listed.stdout and "35" in listed.stdout
