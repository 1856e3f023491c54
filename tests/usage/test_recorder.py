"""Usage accounting on the inference path, in-process: what the recorder writes to the database for each
call (tokens the backend reported, the backend's public label, the outcome, cost and impact), and what it
does not write. (tests/e2e/test_usage.py reads the same rows back through the HTTP API.)"""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from socle.audit.service import AuditTrail
from socle.endpoints import Endpoint
from socle.errors import (
    BackendError,
    BackendTimeout,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    SocleError,
    UpstreamRejected,
)
from socle.identity.permissions import SYSTEM, Permission, Principal
from socle.usage.service import UsageFilter, UsageService
from tests.support.fake_backend import Answer, Fail, FakeBackend, Hang, Reply, Stall
from tests.support.gateway import MESSAGES, caller, chat_model, gateway

WHO = caller(user_id=42, key_id=7, group_ids=[9, 3])
PRICING = {"input_per_million": 2.0, "output_per_million": 6.0}
IMPACT = {"active_params_b": 7.0}


async def test_a_call_leaves_one_record_with_its_tokens_backend_cost_and_impact(tmp_path: Path) -> None:
    async with FakeBackend(default=Answer("Paris est la capitale.", prompt_tokens=12)) as fake, gateway(
            tmp_path, [chat_model("m", {"url": fake.url, "name": "gpu-paris-1"}, pricing=PRICING, impact=IMPACT)]) as gw:
        await gw.chat(WHO, "m")
        [row] = await gw.usage()
    assert (row.model, row.backend, row.endpoint, row.status, row.attempts) == (
        "m", "gpu-paris-1", "chat/completions", "ok", 1)
    assert (row.prompt_tokens, row.completion_tokens) == (12, 4)
    assert row.cost == pytest.approx((12 * 2.0 + 4 * 6.0) / 1e6)
    assert row.energy_kwh > 0 and row.co2_kg > 0
    assert (row.user_id, row.key_id, row.role, row.group_ids) == (42, 7, "user", [3, 9])
    assert row.latency_ms > 0 and row.ttft_ms is None  # no stream: no first token to time


@pytest.mark.parametrize("asks_usage", [False, True], ids=["usage-not-asked", "usage-asked"])
async def test_a_stream_leaves_one_record_of_the_usage_the_backend_reported(tmp_path: Path, asks_usage: bool) -> None:
    async with FakeBackend(default=Answer("un deux trois", prompt_tokens=20)) as fake, \
            gateway(tmp_path, [chat_model("m", fake.url, pricing=PRICING)]) as gw:
        chunks = await gw.stream_chat(WHO, "m", n=2, stream_options={"include_usage": asks_usage})
        [row] = await gw.usage()
    assert (row.status, row.prompt_tokens, row.completion_tokens) == ("ok", 20, 6)  # 3 tokens, 2 choices
    assert row.cost == pytest.approx((20 * 2.0 + 6 * 6.0) / 1e6)
    assert row.ttft_ms is not None and row.ttft_ms <= row.latency_ms
    reported = [chunk["usage"] for chunk in chunks if chunk.get("usage")]
    assert reported == ([{"prompt_tokens": 20, "completion_tokens": 6, "total_tokens": 26}] if asks_usage else [])


async def test_completions_and_embeddings_are_recorded_under_their_endpoint(tmp_path: Path) -> None:
    embeddings = {"id": "e", "type": "embeddings", "backends": [{"type": "openai", "url": ""}]}
    async with FakeBackend() as fake:
        embeddings["backends"][0]["url"] = fake.url
        async with gateway(tmp_path, [chat_model("m", fake.url), embeddings]) as gw:
            await gw.inference.call(WHO, Endpoint.COMPLETIONS, {"model": "m", "prompt": ["un", "deux"], "n": 2})
            vectors = await gw.inference.call(WHO, Endpoint.EMBEDDINGS, {"model": "e", "input": ["a b c", "d e"]})
            rows = await gw.usage()
    assert len(vectors["data"]) == 2 and vectors["model"] == "e"
    assert [(row.model, row.endpoint, row.prompt_tokens, row.completion_tokens) for row in rows] == [
        ("m", "completions", 11, 5 * 4),  # 2 prompts, 2 answers each
        ("e", "embeddings", 5, 0)]


async def test_failover_leaves_one_record_of_the_backend_that_answered(tmp_path: Path) -> None:
    async with FakeBackend(default=Fail(503)) as a, FakeBackend() as b, FakeBackend() as c, \
            gateway(tmp_path, [chat_model("m", a.url, b.url, c.url, routing="round-robin")]) as gw:
        await gw.chat(WHO, "m")
        [row] = await gw.usage()
    assert (row.backend, row.attempts, row.status, row.completion_tokens) == ("m#1", 2, "ok", 5)


@pytest.mark.parametrize(("reply", "error", "status"), [
    (Fail(500), BackendError, "bad_gateway"), (Fail(429), BackendError, "bad_gateway"),
    (Fail(400), UpstreamRejected, "upstream_rejected"), (Hang(), BackendTimeout, "gateway_timeout")],
    ids=["500", "429", "400", "timeout"])
async def test_a_failed_call_is_recorded_with_its_outcome_and_nothing_charged(
        tmp_path: Path, reply: Reply, error: type[SocleError], status: str) -> None:
    async with FakeBackend(default=reply) as fake, gateway(tmp_path, [chat_model(
            "m", {"url": fake.url, "timeout_s": 0.2}, pricing=PRICING, impact=IMPACT)]) as gw:
        with pytest.raises(error):
            await gw.chat(WHO, "m")
        [row] = await gw.usage()
    assert (row.status, row.backend, row.attempts) == (status, "m#0", 1)
    assert (row.prompt_tokens, row.completion_tokens, row.cost) == (0, 0, 0.0)


async def test_calls_refused_before_any_backend_leave_no_record(tmp_path: Path) -> None:
    no_use = Principal(user_id=50, email="lecture@ministere.gouv.fr", role="viewer",
                       permissions=frozenset({Permission.MODELS_READ}))
    async with FakeBackend() as fake, gateway(tmp_path, [chat_model("m", fake.url)]) as gw:
        with pytest.raises(NotFound):
            await gw.chat(WHO, "inconnu")
        with pytest.raises(InvalidRequest, match="max_tokens"):
            await gw.chat(WHO, "m", max_tokens=100_000)
        with pytest.raises(InvalidRequest, match="choices"):
            await gw.chat(WHO, "m", n=50)
        with pytest.raises(InvalidRequest, match="does not serve"):
            await gw.inference.call(WHO, Endpoint.EMBEDDINGS, {"model": "m", "input": "x"})
        with pytest.raises(PermissionDenied):
            await gw.chat(no_use, "m")
        assert await gw.usage() == [] and not fake.received


async def test_a_call_refused_by_a_quota_is_recorded_as_such_with_nothing_charged(tmp_path: Path) -> None:
    async with FakeBackend() as fake, gateway(tmp_path, [chat_model("m", fake.url, pricing=PRICING)]) as gw:
        await gw.add_quota(scope="user", subject="42", requests_per_minute=1)
        await gw.chat(WHO, "m")
        with pytest.raises(RateLimited):
            await gw.chat(WHO, "m")
        rows = await gw.usage()
    assert [(row.status, row.attempts) for row in rows] == [("ok", 1), ("rate_limited", 0)]
    refused = rows[1]
    assert (refused.backend, refused.prompt_tokens, refused.completion_tokens, refused.cost) == (None, 0, 0, 0.0)
    assert len(fake.received) == 1


async def test_a_client_leaving_a_stream_is_recorded_as_closed_by_the_client(tmp_path: Path) -> None:
    async with FakeBackend(default=Stall(after=3)) as fake, gateway(tmp_path, [chat_model("m", fake.url)]) as gw:
        stream = await gw.inference.stream(WHO, Endpoint.CHAT, {"model": "m", "messages": MESSAGES, "stream": True})
        await anext(stream)
        await stream.aclose()
        [row] = await gw.usage()
    assert (row.status, row.backend, row.attempts) == ("client_closed", "m#0", 1)
    assert row.ttft_ms is not None and (row.prompt_tokens, row.completion_tokens, row.cost) == (0, 0, 0.0)


async def test_each_call_of_concurrent_callers_is_recorded_once(tmp_path: Path) -> None:
    async with FakeBackend() as a, FakeBackend() as b, gateway(tmp_path, [chat_model("m", a.url, b.url)]) as gw:
        callers = [caller(user_id) for user_id in range(100, 110)]
        await asyncio.gather(*(gw.chat(who, "m") for who in callers for _ in range(3)))
        rows = await gw.usage()
    assert sorted(row.user_id for row in rows) == sorted(who.user_id for who in callers for _ in range(3))
    assert len(a.received) + len(b.received) == 30 and all(row.status == "ok" for row in rows)


async def test_the_platforms_own_calls_are_not_counted_as_an_active_user(tmp_path: Path) -> None:
    """Documents' embeddings are the platform's calls (SYSTEM): in usage, but not a person using it."""
    async with FakeBackend() as fake, gateway(tmp_path, [chat_model("m", fake.url)]) as gw:
        await gw.chat(WHO, "m")
        await gw.chat(SYSTEM, "m")
        rows = await gw.usage()
        active = await UsageService(gw.sessions, AuditTrail(gw.sessions), currency="EUR").active_users(
            SYSTEM, UsageFilter())
    assert sorted(row.user_id for row in rows) == [SYSTEM.user_id, WHO.user_id]
    assert active.total == 1 and list(active.per_day.values()) == [1]
