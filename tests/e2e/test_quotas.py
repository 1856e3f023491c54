"""Quotas: rate limits and budgets, in memory and in Redis shared by two workers; Redis down or paused."""
from __future__ import annotations

import asyncio
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import openai
import pytest

from tests.support.servers import Server, free_port, start_server, stop
from tests.ui.conftest import http_sign_in_attempt, new_account

MESSAGES = [{"role": "user", "content": "x"}]
T = TypeVar("T")


def _new_user(admin: httpx.Client) -> tuple[int, str]:
    user = admin.post("/users", json={"email": f"quota-{secrets.token_hex(4)}@culture.gouv.fr"}).json()
    return user["id"], admin.post("/keys", json={"user_id": user["id"]}).json()["key"]


def _admin(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"}, timeout=30)


def _quota(admin: httpx.Client, **fields: object) -> dict:
    response = admin.post("/quotas", json=fields)
    assert response.status_code == 201, response.text
    return response.json()


def _sdk(server: Server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)


async def _burst(server: Server, key: str, calls: int, **options: object) -> list[object]:
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key=key, max_retries=0) as client:
        return await asyncio.gather(*(client.chat.completions.create(model="remote-chat", messages=MESSAGES, **options)
                                      for _ in range(calls)), return_exceptions=True)


def test_requests_per_minute_with_openai_headers(server: Server) -> None:
    with _admin(server) as admin:
        user_id, key = _new_user(admin)
        _quota(admin, scope="user", subject=str(user_id), requests_per_minute=3)
    client = _sdk(server, key)
    for _ in range(3):
        client.chat.completions.create(model="remote-chat", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as error:
        client.chat.completions.create(model="remote-chat", messages=MESSAGES)
    headers = error.value.response.headers
    assert error.value.body["code"] == "rate_limit_exceeded" and error.value.body["type"] == "requests"
    assert 1 <= int(headers["retry-after"]) <= 60
    assert headers["x-ratelimit-limit-requests"] == "3" and headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"].endswith("s")


def test_a_refused_call_consumes_no_quota(server: Server) -> None:
    with _admin(server) as admin:
        user_id, key = _new_user(admin)
        _quota(admin, scope="user", subject=str(user_id), requests_per_minute=5)  # every model together
        _quota(admin, scope="user", subject=str(user_id), model="remote-chat", requests_per_minute=2)
    client = _sdk(server, key)
    for _ in range(2):
        client.chat.completions.create(model="remote-chat", messages=MESSAGES)
    for _ in range(4):  # refused by the remote-chat rule: the all-models rule must not count them
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="remote-chat", messages=MESSAGES)
    for _ in range(3):
        client.embeddings.create(model="remote-embed", input="x")
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="remote-embed", input="x")


def test_a_group_shares_its_quota_and_a_role_gives_each_user_their_own(server: Server) -> None:
    with _admin(server) as admin:
        group = admin.post("/groups", json={"name": f"prefecture-{secrets.token_hex(3)}"}).json()
        role = admin.post("/roles", json={"name": f"app-{secrets.token_hex(3)}",
                                          "permissions": ["models:read", "models:use"]}).json()
        keys = []
        for _ in range(2):
            user = admin.post("/users", json={"email": f"q-{secrets.token_hex(4)}@x.gouv.fr", "role": role["name"],
                                              "groups": [group["name"]]}).json()
            keys.append(admin.post("/keys", json={"user_id": user["id"]}).json()["key"])
        _quota(admin, scope="group", subject=str(group["id"]), model="remote-chat", requests_per_minute=3)
        _quota(admin, scope="role", subject=role["name"], model="remote-embed", requests_per_minute=2)
    first, second = (_sdk(server, k) for k in keys)
    first.chat.completions.create(model="remote-chat", messages=MESSAGES)
    first.chat.completions.create(model="remote-chat", messages=MESSAGES)
    second.chat.completions.create(model="remote-chat", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError):  # the group's 3 are spent, whoever spent them
        second.chat.completions.create(model="remote-chat", messages=MESSAGES)
    for client in (first, second):  # the role's 2 per user
        client.embeddings.create(model="remote-embed", input="x")
        client.embeddings.create(model="remote-embed", input="x")
        with pytest.raises(openai.RateLimitError):
            client.embeddings.create(model="remote-embed", input="x")


async def test_concurrent_calls_cannot_overspend_a_budget(server: Server) -> None:
    with _admin(server) as admin:
        user_id, key = _new_user(admin)
        _quota(admin, scope="user", subject=str(user_id), budget_tokens=200, budget_period="day")
    # Each call reserves its prompt estimate plus max_tokens, and really uses 18 tokens.
    results = await _burst(server, key, 50, max_tokens=10)
    succeeded = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert len(succeeded) + len(refused) == 50 and succeeded and refused
    assert all(r.body["code"] == "insufficient_quota" and r.body["type"] == "insufficient_quota" for r in refused)
    # Spend the rest one call at a time, until the budget says no.
    client = _sdk(server, key)
    spent = 18 * len(succeeded)
    while True:
        try:
            client.chat.completions.create(model="remote-chat", messages=MESSAGES, max_tokens=10)
        except openai.RateLimitError:
            break
        spent += 18
    assert spent <= 200 + 18  # at most one call over
    assert spent > 200 - 40  # refused only once what is left cannot hold a call's reservation (~36 tokens)


async def test_concurrent_calls_with_several_choices_cannot_overspend_a_budget(server: Server) -> None:
    with _admin(server) as admin:
        user_id, key = _new_user(admin)
        _quota(admin, scope="user", subject=str(user_id), budget_tokens=300, budget_period="day")
    # Each call generates 8 choices of 7 tokens (67 tokens in all): the reservation must hold all 8.
    results = await _burst(server, key, 30, max_tokens=10, n=8)
    succeeded = [r for r in results if not isinstance(r, Exception)]
    assert succeeded and all(isinstance(r, openai.RateLimitError) for r in results if isinstance(r, Exception))
    assert all(len(r.choices) == 8 for r in succeeded)
    assert sum(r.usage.total_tokens for r in succeeded) <= 300


def test_choices_stops_logprobs_and_embedding_inputs_are_capped(server: Server) -> None:
    client = _sdk(server, server.admin_key)
    refusals = [(lambda: client.chat.completions.create(model="remote-chat", messages=MESSAGES, n=9), "n"),
                (lambda: client.completions.create(model="remote-chat", prompt="x", best_of=9), "best_of"),
                (lambda: client.chat.completions.create(model="remote-chat", messages=MESSAGES,
                                                        stop=["a", "b", "c", "d", "e"]), "stop"),
                (lambda: client.chat.completions.create(model="remote-chat", messages=MESSAGES, logprobs=True,
                                                        top_logprobs=21), "top_logprobs"),
                (lambda: client.embeddings.create(model="remote-embed", input=["x"] * 2049), "input")]
    for call, param in refusals:  # the service's limit is a 400, the schema's a 422: both name the field
        with pytest.raises((openai.BadRequestError, openai.UnprocessableEntityError)) as error:
            call()
        assert error.value.body["param"].split(".")[0] == param, error.value.body
    assert len(client.chat.completions.create(model="remote-chat", messages=MESSAGES, n=8,
                                              stop=["a", "b", "c", "d"]).choices) == 8
    assert len(client.embeddings.create(model="remote-embed", input=["x"] * 2048).data) == 2048


def test_quota_administration_is_for_admins(server: Server) -> None:
    with _admin(server) as admin:
        _, key = _new_user(admin)
        assert admin.post("/quotas", json={"scope": "user", "subject": "x", "requests_per_minute": 1}).status_code == 400
        assert admin.post("/quotas", json={"scope": "global"}).status_code == 400
        quota = _quota(admin, scope="global", model="no-such-model-yet", requests_per_day=10)
        assert admin.patch(f"/quotas/{quota['id']}", json={"requests_per_day": 20}).json()["requests_per_day"] == 20
        assert any(q["id"] == quota["id"] for q in admin.get("/quotas").json()["data"])
        assert admin.delete(f"/quotas/{quota['id']}").status_code == 204
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}) as user:
        assert user.get("/quotas").status_code == 403
        assert user.post("/quotas", json={"scope": "global", "requests_per_minute": 1}).status_code == 403


# ---- Redis: two workers, and Redis down -------------------------------------------------------------

async def test_limits_are_exact_across_two_workers_sharing_redis(redis_server: Server) -> None:
    with _admin(redis_server) as admin:
        user_id, key = _new_user(admin)
        _quota(admin, scope="user", subject=str(user_id), requests_per_minute=25)
    await asyncio.sleep(1)  # both workers see the new rule
    results = await _burst(redis_server, key, 60)
    assert sum(not isinstance(r, Exception) for r in results) == 25
    assert sum(isinstance(r, openai.RateLimitError) for r in results) == 35


async def test_a_budget_holds_across_two_workers(redis_server: Server) -> None:
    with _admin(redis_server) as admin:
        user_id, key = _new_user(admin)
        _quota(admin, scope="user", subject=str(user_id), budget_tokens=300, budget_period="month")
    await asyncio.sleep(1)
    spent = 0
    for _ in range(4):
        results = await _burst(redis_server, key, 12, max_tokens=10)
        spent += 18 * sum(not isinstance(r, Exception) for r in results)
    assert spent <= 300 + 18


@pytest.mark.parametrize("fail_open", [False, True])
def test_redis_down_follows_the_setting(tmp_path: Path, catalogue: Path, fail_open: bool) -> None:
    env = {"SOCLE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "SOCLE_QUOTA_FAIL_OPEN": str(fail_open).lower()}
    server = start_server(tmp_path / "data", config=catalogue, extra_env=env)
    try:
        with _admin(server) as admin:
            bound_id, bound = _new_user(admin)
            _, free = _new_user(admin)
            _quota(admin, scope="user", subject=str(bound_id), requests_per_minute=100)
        # A caller no quota binds never needs the store.
        assert _sdk(server, free).chat.completions.create(model="remote-chat", messages=MESSAGES).choices
        if fail_open:
            assert _sdk(server, bound).chat.completions.create(model="remote-chat", messages=MESSAGES).choices
        else:
            with pytest.raises(openai.InternalServerError) as error:
                _sdk(server, bound).chat.completions.create(model="remote-chat", messages=MESSAGES)
            assert error.value.status_code == 503
            assert error.value.body["code"] == "quota_store_unavailable"
    finally:
        stop(server.process)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis of this test's own, to pause: never the machine's shared one."""
    port = free_port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(tmp_path)],
                               stdout=(tmp_path / "redis.log").open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    ping = ["redis-cli", "-p", str(port), "ping"]
    while subprocess.run(ping, capture_output=True).stdout.strip() != b"PONG":
        assert time.monotonic() < deadline and process.poll() is None, "redis-server did not start"
        time.sleep(0.1)
    yield f"redis://127.0.0.1:{port}/0", process
    process.send_signal(signal.SIGCONT)
    stop(process)


def _timed(call: Callable[[], T]) -> tuple[T | Exception, float]:
    start = time.monotonic()
    try:
        outcome: T | Exception = call()
    except Exception as exc:  # noqa: BLE001 (the test looks at what was raised)
        outcome = exc
    return outcome, time.monotonic() - start


@pytest.mark.parametrize("fail_open", [False, True])
def test_a_paused_redis_meets_the_policy_within_a_second(
        tmp_path: Path, catalogue: Path, fail_open: bool, own_redis: tuple[str, subprocess.Popen[bytes]]) -> None:
    redis_url, redis = own_redis
    env = {"SOCLE_REDIS_URL": redis_url, "SOCLE_QUOTA_FAIL_OPEN": str(fail_open).lower(),
           "SOCLE_UI_COOKIE_SECURE": "false"}
    server = start_server(tmp_path / "data", config=catalogue, extra_env=env)
    try:
        with _admin(server) as admin:
            bound_id, key = _new_user(admin)
            _quota(admin, scope="user", subject=str(bound_id), requests_per_minute=100)
            account = new_account(server, admin)
        client = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0, timeout=10)

        def ask() -> object:
            return client.chat.completions.create(model="remote-chat", messages=MESSAGES)

        def sign_in() -> httpx.Response:
            with httpx.Client(base_url=server.url, timeout=10) as browser:
                return http_sign_in_attempt(browser, account.email, account.password)

        assert ask().choices and sign_in().status_code == 303
        redis.send_signal(signal.SIGSTOP)  # alive, accepting connections, answering nothing
        try:
            answer, elapsed = _timed(ask)
            if fail_open:
                assert not isinstance(answer, Exception), answer
            else:
                assert isinstance(answer, openai.InternalServerError), answer
                assert answer.status_code == 503 and answer.body["code"] == "quota_store_unavailable"
            assert elapsed < 2.5
            refused, elapsed = _timed(sign_in)  # failed sign-ins cannot be counted: password sign-in refused
            assert isinstance(refused, httpx.Response) and refused.status_code == 503, refused
            assert elapsed < 2.5
        finally:
            redis.send_signal(signal.SIGCONT)
        assert ask().choices and sign_in().status_code == 303  # served again, without a restart
    finally:
        stop(server.process)


def test_cli_manages_quotas(server: Server) -> None:
    with _admin(server) as admin:
        user_id, key = _new_user(admin)
    created = server.cli("quotas", "create", "user", str(user_id), "--model", "remote-chat", "--rpm", "1")
    assert created.returncode == 0, created.stderr
    quota_id = created.stdout.split()[1]
    assert quota_id in server.cli("quotas", "list").stdout
    refused = server.cli("quotas", "create", "galaxy", "x", "--rpm", "1")
    assert refused.returncode == 1 and "scope" in refused.stderr
    client = _sdk(server, key)
    deadline = time.monotonic() + 10  # the server re-reads rules every SOCLE_QUOTA_REFRESH_S (5 s)
    while time.monotonic() < deadline:
        try:
            client.chat.completions.create(model="remote-chat", messages=MESSAGES)
        except openai.RateLimitError:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the quota made with the CLI never applied")
    assert server.cli("quotas", "delete", quota_id).returncode == 0


def test_a_cost_budget_stops_spending_at_its_limit(server: Server) -> None:
    with _admin(server) as admin:
        user_id, key = _new_user(admin)
        # remote-chat costs 2 per million input tokens and 6 per million output: 64 millionths per call here.
        _quota(admin, scope="user", subject=str(user_id), model="remote-chat", budget_cost=0.0005,
               budget_period="day")
    client = _sdk(server, key)
    calls = 0
    with pytest.raises(openai.RateLimitError) as error:
        while calls < 100:
            client.chat.completions.create(model="remote-chat", messages=MESSAGES, max_tokens=10)
            calls += 1
    assert error.value.body["code"] == "insufficient_quota"
    spent = calls * (11 * 2.0 + 7 * 6.0) / 1e6
    assert spent <= 0.0005 and calls >= 5
