"""Quotas on the inference path, in-process: rules created as an administrator does, enforced by the real
limiter on each storage (memory and Redis), around calls answered by a scripted backend.
(tests/e2e/test_quotas.py covers the HTTP side: status, headers, several workers, Redis down.)"""
from __future__ import annotations

from pathlib import Path

import pytest

from socle.endpoints import Endpoint
from socle.errors import BackendError, RateLimited
from socle.inference.service import InferenceService
from socle.quotas.limiter import QuotaLimiter
from tests.support.fake_backend import Answer, Fail, FakeBackend
from tests.support.gateway import MESSAGES, REDIS_URL, Gateway, caller, chat_model, gateway

WHO = caller(user_id=42, group_ids=[5])
# The backend reports 300 prompt tokens for each call, far more than the limiter's estimate of the prompt:
# what is charged after a call is then told apart from what was reserved before it.
HEAVY = Answer("Réponse de cinq mots exactement.", prompt_tokens=300)  # 305 tokens a call


async def _admitted(gw: Gateway, calls: int, model: str = "m", **body: object) -> int:
    """How many of ``calls`` calls got through before the first refusal (which must be a quota's)."""
    for done in range(calls):
        try:
            await gw.chat(WHO, model, **body)
        except RateLimited:
            return done
    return calls


async def test_requests_per_minute_refuse_beyond_the_limit(tmp_path: Path, redis_url: str | None) -> None:
    async with FakeBackend() as fake, gateway(tmp_path, [chat_model("m", fake.url)], redis_url=redis_url) as gw:
        await gw.add_quota(scope="user", subject="42", requests_per_minute=2)
        assert await _admitted(gw, 5) == 2
        with pytest.raises(RateLimited) as refused:
            await gw.chat(WHO, "m")
        assert refused.value.headers["x-ratelimit-limit-requests"] == "2"
        assert refused.value.headers["x-ratelimit-remaining-requests"] == "0"
        assert 0 < refused.value.retry_after_s <= 60
        assert len(fake.received) == 2  # refused calls never reach a backend
        await gw.chat(caller(user_id=43), "m")  # another user's calls are not counted there


async def test_a_refused_call_consumes_no_quota(tmp_path: Path, redis_url: str | None) -> None:
    async with FakeBackend() as fake, gateway(tmp_path, [chat_model("m", fake.url), chat_model("autre", fake.url)],
                                              redis_url=redis_url) as gw:
        await gw.add_quota(scope="user", subject="42", requests_per_minute=5)  # every model together
        await gw.add_quota(scope="user", subject="42", model="m", requests_per_minute=2)
        assert await _admitted(gw, 6, "m") == 2
        for _ in range(3):  # refused by m's rule: the rule of every model must not count them
            with pytest.raises(RateLimited):
                await gw.chat(WHO, "m")
        assert await _admitted(gw, 5, "autre") == 3
        assert len(fake.received) == 5


async def test_a_budget_reserves_every_choice_before_the_backend_is_called(tmp_path: Path,
                                                                          redis_url: str | None) -> None:
    async with FakeBackend() as fake, gateway(tmp_path, [chat_model("m", fake.url)], redis_url=redis_url) as gw:
        await gw.add_quota(scope="user", subject="42", budget_tokens=1000, budget_period="day")
        await gw.chat(WHO, "m", max_tokens=200)
        with pytest.raises(RateLimited) as refused:  # 8 answers of up to 200 tokens: 1,600 > 1,000
            await gw.chat(WHO, "m", max_tokens=200, n=8)
        assert refused.value.code == "insufficient_quota" and refused.value.type == "insufficient_quota"
        with pytest.raises(RateLimited):  # 3 prompts of a batch, 2 answers each, up to 200 tokens: 1,200
            await gw.inference.call(WHO, Endpoint.COMPLETIONS, {"model": "m", "prompt": ["un", "deux", "trois"],
                                                                "n": 2, "max_tokens": 200})
        assert len(fake.received) == 1
        await gw.chat(WHO, "m", max_tokens=200, n=4)  # 800 still fits: the refusals took nothing
        assert fake.received[-1].body["n"] == 4


async def test_a_budget_is_charged_what_the_backend_reports(tmp_path: Path, redis_url: str | None) -> None:
    async with FakeBackend(default=HEAVY) as fake, \
            gateway(tmp_path, [chat_model("m", fake.url)], redis_url=redis_url) as gw:
        await gw.add_quota(scope="user", subject="42", budget_tokens=700, budget_period="month")
        # Each call reserves under 100 tokens and is charged 305: the third starts at 610 and fits its
        # reservation, the fourth does not.
        assert await _admitted(gw, 10, max_tokens=10) == 3


async def test_a_stream_is_charged_the_usage_it_reports(tmp_path: Path, redis_url: str | None) -> None:
    async with FakeBackend(default=HEAVY) as fake, \
            gateway(tmp_path, [chat_model("m", fake.url)], redis_url=redis_url) as gw:
        await gw.add_quota(scope="user", subject="42", budget_tokens=700)
        for _ in range(3):
            chunks = await gw.stream_chat(WHO, "m", max_tokens=10)
            assert not any("usage" in chunk for chunk in chunks)  # not asked for by the client
        with pytest.raises(RateLimited):
            await gw.stream_chat(WHO, "m", max_tokens=10)
        # The platform asks the backend for the usage whatever the client wants: it is what gets charged.
        assert all(call.body["stream_options"] == {"include_usage": True} for call in fake.received)


async def test_a_failed_call_gives_its_reservation_back(tmp_path: Path, redis_url: str | None) -> None:
    async with FakeBackend(default=Fail(500)) as fake, \
            gateway(tmp_path, [chat_model("m", fake.url, failure_threshold=10)], redis_url=redis_url) as gw:
        await gw.add_quota(scope="user", subject="42", budget_tokens=1000)
        for _ in range(4):  # each reserves over 400 tokens: kept, the third would already be refused
            with pytest.raises(BackendError):
                await gw.chat(WHO, "m", max_tokens=400)
        fake.default = Answer()
        await gw.chat(WHO, "m", max_tokens=400)
        await gw.chat(WHO, "m", max_tokens=400)
        assert len(fake.received) == 6


async def test_tokens_per_minute_are_counted_after_each_call(tmp_path: Path, redis_url: str | None) -> None:
    async with FakeBackend() as fake, gateway(tmp_path, [chat_model("m", fake.url)], redis_url=redis_url) as gw:
        await gw.add_quota(scope="key", subject="7", tokens_per_minute=30)
        assert await _admitted(gw, 5) == 2  # 16 tokens a call: checked below 30 before each, charged after
        with pytest.raises(RateLimited) as refused:
            await gw.chat(WHO, "m")
        assert refused.value.headers["x-ratelimit-limit-tokens"] == "30"


async def test_a_cost_budget_stops_spending_at_its_limit(tmp_path: Path, redis_url: str | None) -> None:
    pricing = {"input_per_million": 1000.0, "output_per_million": 1000.0}  # 305 tokens: 0.305 a call
    async with FakeBackend(default=HEAVY) as fake, \
            gateway(tmp_path, [chat_model("m", fake.url, pricing=pricing)], redis_url=redis_url) as gw:
        await gw.add_quota(scope="global", subject="", budget_cost=0.7, budget_period="day")
        assert await _admitted(gw, 10, max_tokens=10) == 3


async def test_a_group_shares_its_quota_and_a_role_gives_each_user_their_own(tmp_path: Path,
                                                                             redis_url: str | None) -> None:
    async with FakeBackend() as fake, gateway(tmp_path, [chat_model("m", fake.url)], redis_url=redis_url) as gw:
        await gw.add_quota(scope="group", subject="5", requests_per_minute=2)
        await gw.add_quota(scope="role", subject="reader", requests_per_minute=1)
        first, second = caller(1, group_ids=[5]), caller(2, group_ids=[5, 6])
        await gw.chat(first, "m")
        await gw.chat(second, "m")
        with pytest.raises(RateLimited):
            await gw.chat(first, "m")
        readers = [caller(user_id, role="reader") for user_id in (10, 11)]
        for reader in readers:
            await gw.chat(reader, "m")
        for reader in readers:
            with pytest.raises(RateLimited):
                await gw.chat(reader, "m")


async def test_two_processes_sharing_redis_share_their_counters(tmp_path: Path) -> None:
    async with FakeBackend() as fake, gateway(tmp_path, [chat_model("m", fake.url)], redis_url=REDIS_URL) as gw:
        await gw.add_quota(scope="user", subject="42", requests_per_minute=3, budget_tokens=10_000)
        other = InferenceService(gw.registry, max_tokens_limit=1024,
                                 quotas=QuotaLimiter(gw.quotas, redis_url=REDIS_URL, key_prefix=gw.key_prefix))
        body = {"model": "m", "messages": MESSAGES}
        await gw.chat(WHO, "m")
        await other.call(WHO, Endpoint.CHAT, body)
        await gw.chat(WHO, "m")
        with pytest.raises(RateLimited):
            await other.call(WHO, Endpoint.CHAT, body)
        assert len(fake.received) == 3
