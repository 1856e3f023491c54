"""What the quotas leave a person ("Ma consommation"), read from each quota store without consuming anything."""
from __future__ import annotations

from pathlib import Path

from socle.quotas.service import Allowance
from tests.support.fake_backend import Answer, FakeBackend
from tests.support.gateway import Gateway, caller, chat_model, gateway

WHO = caller(user_id=42, group_ids=[5], key_id=None)  # signed in to the pages: no key of the call's own
HEAVY = Answer("Réponse de cinq mots exactement.", prompt_tokens=300)  # 305 tokens a call


def _left(lines: list[Allowance]) -> dict[tuple[str, str], tuple[float, float, float]]:
    return {(line.scope, line.limit_name): (line.limit, line.used, line.remaining) for line in lines}


async def _allowance(gw: Gateway, key_ids: tuple[int, ...] = ()) -> list[Allowance]:
    await gw.limiter.store.flush()  # settlements may ride with the next step: the read comes after them
    return await gw.quotas.allowance(WHO, gw.limiter.store, key_ids=key_ids)


async def test_the_allowance_counts_calls_and_consumes_nothing(tmp_path: Path, redis_url: str | None) -> None:
    async with FakeBackend(HEAVY) as fake, gateway(tmp_path, [chat_model("m", fake.url)], redis_url=redis_url) as gw:
        assert await _allowance(gw) == []  # no quota: nothing to show
        await gw.add_quota(scope="user", subject="42", requests_per_minute=5, requests_per_day=100,
                           budget_tokens=10_000, budget_period="day")
        await gw.add_quota(scope="group", subject="5", model="m", tokens_per_minute=50_000)
        await gw.add_quota(scope="key", subject="9", budget_cost=2.5)  # one of the person's keys
        await gw.add_quota(scope="user", subject="43", requests_per_minute=1)  # someone else's: not shown
        await gw.add_quota(scope="key", subject="10", requests_per_minute=1)  # a key that is not theirs
        assert _left(await _allowance(gw, (9,))) == {
            ("user", "requests_per_minute"): (5, 0, 5), ("user", "requests_per_day"): (100, 0, 100),
            ("user", "budget_tokens"): (10_000, 0, 10_000), ("group", "tokens_per_minute"): (50_000, 0, 50_000),
            ("key", "budget_cost"): (2.5, 0, 2.5)}
        for _ in range(2):
            await gw.chat(WHO, "m")
        for _ in range(3):  # reading, again and again, consumes nothing
            left = _left(await _allowance(gw, (9,)))
        assert left[("user", "requests_per_minute")] == (5, 2, 3)
        assert left[("user", "requests_per_day")] == (100, 2, 98)
        assert left[("user", "budget_tokens")] == (10_000, 610, 9_390)  # settled to what the calls used
        assert left[("group", "tokens_per_minute")] == (50_000, 610, 49_390)
        assert await _admitted_all(gw, 3)  # the 3 calls left are still admitted after all those reads


async def _admitted_all(gw: Gateway, calls: int) -> bool:
    for _ in range(calls):
        await gw.chat(WHO, "m")
    return _left(await _allowance(gw))[("user", "requests_per_minute")] == (5, 5, 0)

