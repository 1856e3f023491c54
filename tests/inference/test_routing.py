"""Routing a model's calls over its backends, in-process: the strategies, failover before the first byte,
circuit breakers and health checks, through the real adapter talking HTTP to scripted backends.
(tests/e2e/test_routing.py covers the same over a running server and backend processes.)"""
from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from socle.endpoints import Endpoint
from socle.errors import BackendError, BackendTimeout, UpstreamRejected
from tests.support.fake_backend import Answer, Cut, Fail, FakeBackend, Hang, Reply, Stall, Truncate
from tests.support.gateway import MESSAGES, Gateway, caller, chat_model, gateway

WHO = caller()


async def _served_by(gw: Gateway, calls: int) -> list[str]:
    """Make ``calls`` chat calls; the public label of the backend that answered each call so far, in order."""
    for _ in range(calls):
        await gw.chat(WHO, "m")
    return [row.backend or "" for row in await gw.usage()]


def _text(chunks: list[dict]) -> str:
    return "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks if chunk["choices"])


# -- strategies -----------------------------------------------------------------------------------------------


async def test_round_robin_takes_the_backends_in_turn(tmp_path: Path) -> None:
    async with FakeBackend() as a, FakeBackend() as b, \
            gateway(tmp_path, [chat_model("m", a.url, b.url, routing="round-robin")]) as gw:
        assert await _served_by(gw, 6) == ["m#0", "m#1"] * 3
        assert len(a.received) == len(b.received) == 3


async def test_weighted_follows_the_weights(tmp_path: Path) -> None:
    async with FakeBackend() as a, FakeBackend() as b, gateway(tmp_path, [chat_model(
            "m", {"url": a.url, "weight": 3}, {"url": b.url, "weight": 1}, routing="weighted")]) as gw:
        served = await _served_by(gw, 200)
        assert 120 <= served.count("m#0") <= 180  # 150 expected: 5 standard deviations either side


async def test_least_busy_avoids_a_backend_with_a_call_in_flight(tmp_path: Path) -> None:
    held = asyncio.Event()
    async with FakeBackend() as a, FakeBackend() as b, gateway(tmp_path, [chat_model("m", a.url, b.url)]) as gw:
        a.script(Answer(release=held))
        first = asyncio.create_task(gw.chat(WHO, "m"))  # idle pool: ties go round robin, a first
        await a.wait_for_calls(1)
        for _ in range(3):
            await gw.chat(WHO, "m")
        assert (len(a.received), len(b.received)) == (1, 3)
        held.set()
        await first
        await gw.chat(WHO, "m")
        await gw.chat(WHO, "m")
        assert (len(a.received), len(b.received)) == (2, 4)  # idle again: back in turn


async def test_an_open_stream_keeps_its_backend_busy_for_its_whole_life(tmp_path: Path) -> None:
    async with FakeBackend() as a, FakeBackend() as b, gateway(tmp_path, [chat_model("m", a.url, b.url)]) as gw:
        stream = await gw.inference.stream(WHO, Endpoint.CHAT, {"model": "m", "messages": MESSAGES, "stream": True})
        await anext(stream)  # a's stream has started and is not finished
        await gw.chat(WHO, "m")
        await gw.chat(WHO, "m")
        assert (len(a.received), len(b.received)) == (1, 2)
        async for _ in stream:
            pass
        await gw.chat(WHO, "m")
        assert len(a.received) + len(b.received) == 4


# -- failover before the first byte ---------------------------------------------------------------------------


@pytest.mark.parametrize("failure", [Fail(500), Fail(503), Fail(429), Cut(), Truncate()],
                         ids=["500", "503", "429", "dropped", "half-an-answer"])
async def test_a_failure_before_the_first_byte_is_retried_on_another_backend(tmp_path: Path, failure: Reply) -> None:
    async with FakeBackend() as a, FakeBackend(default=Answer("réponse de secours")) as b, \
            gateway(tmp_path, [chat_model("m", a.url, b.url, routing="round-robin")]) as gw:
        a.script(failure)
        answer = await gw.chat(WHO, "m")
        assert answer["choices"][0]["message"]["content"] == "réponse de secours" and answer["model"] == "m"
        assert (len(a.received), len(b.received)) == (1, 1)
        [row] = await gw.usage()
        assert (row.backend, row.attempts, row.status) == ("m#1", 2, "ok")


async def test_a_stream_failing_before_its_first_byte_is_served_by_another_backend(tmp_path: Path) -> None:
    async with FakeBackend() as a, FakeBackend(default=Answer("flux de secours")) as b, \
            gateway(tmp_path, [chat_model("m", a.url, b.url, routing="round-robin")]) as gw:
        a.script(Fail(502))
        chunks = await gw.stream_chat(WHO, "m")
        assert _text(chunks) == "flux de secours "
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
        assert [call.stream for call in (*a.received, *b.received)] == [True, True]


async def test_a_backend_that_does_not_answer_in_time_is_left_for_another(tmp_path: Path) -> None:
    async with FakeBackend(default=Hang()) as a, FakeBackend() as b, gateway(tmp_path, [chat_model(
            "m", {"url": a.url, "timeout_s": 0.3}, b.url, routing="round-robin")]) as gw:
        await gw.chat(WHO, "m")
        assert (len(a.received), len(b.received)) == (1, 1)
        a.default = Answer(delay_s=2)  # a first byte later than the timeout: left too
        await gw.chat(WHO, "m")  # b's turn
        await gw.chat(WHO, "m")  # a's turn, then b
        assert (len(a.received), len(b.received)) == (2, 3)
        assert [row.backend for row in await gw.usage()] == ["m#1"] * 3


async def test_a_slow_first_byte_within_the_timeout_is_waited_for(tmp_path: Path) -> None:
    async with FakeBackend(default=Answer("lente mais juste", delay_s=0.3)) as a, FakeBackend() as b, \
            gateway(tmp_path, [chat_model("m", {"url": a.url, "timeout_s": 5}, b.url, routing="round-robin")]) as gw:
        chunks = await gw.stream_chat(WHO, "m")
        assert _text(chunks) == "lente mais juste " and not b.received


async def test_a_request_the_backend_rejects_is_not_retried(tmp_path: Path) -> None:
    async with FakeBackend() as a, FakeBackend() as b, \
            gateway(tmp_path, [chat_model("m", a.url, b.url, routing="round-robin")]) as gw:
        a.script(Fail(400, "This model's maximum context length is 4096 tokens"))
        with pytest.raises(UpstreamRejected, match="maximum context length is 4096") as rejected:
            await gw.chat(WHO, "m")
        assert rejected.value.status == 400 and not b.received  # another backend would reject it as well


async def test_retries_bound_the_backends_tried(tmp_path: Path) -> None:
    async with FakeBackend(default=Fail(500)) as a, FakeBackend(default=Fail(500)) as b, FakeBackend() as c, \
            gateway(tmp_path, [chat_model("m", a.url, b.url, c.url, routing="round-robin", retries=1)]) as gw:
        with pytest.raises(BackendError, match="m#1"):  # the last backend tried, by its public label
            await gw.chat(WHO, "m")
        assert (len(a.received), len(b.received), len(c.received)) == (1, 1, 0)


async def test_when_every_backend_fails_the_caller_gets_the_last_failure(tmp_path: Path) -> None:
    async with FakeBackend(default=Fail(500)) as a, FakeBackend(default=Hang()) as b, gateway(tmp_path, [chat_model(
            "m", a.url, {"url": b.url, "timeout_s": 0.2}, routing="round-robin")]) as gw:
        with pytest.raises(BackendTimeout, match="m#1 did not answer in time"):
            await gw.chat(WHO, "m")
        assert (len(a.received), len(b.received)) == (1, 1)


async def test_an_unreachable_backend_is_skipped(tmp_path: Path) -> None:
    async with FakeBackend() as gone:
        closed = gone.url  # nothing listens there any more
    async with FakeBackend() as b, gateway(tmp_path, [chat_model("m", closed, b.url, routing="round-robin")]) as gw:
        await gw.chat(WHO, "m")
        [row] = await gw.usage()
        assert (row.backend, row.attempts) == ("m#1", 2)


# -- no failover once a stream has started --------------------------------------------------------------------


async def test_a_stream_dropped_after_its_first_byte_fails_without_failover(tmp_path: Path) -> None:
    async with FakeBackend(default=Cut(after=2)) as a, FakeBackend() as b, \
            gateway(tmp_path, [chat_model("m", a.url, b.url, routing="round-robin")]) as gw:
        stream = await gw.inference.stream(WHO, Endpoint.CHAT, {"model": "m", "messages": MESSAGES, "stream": True})
        received = []
        with pytest.raises(BackendError):
            async for chunk in stream:
                received.append(chunk)
        assert len(received) == 2 and not b.received  # the client has part of an answer: never another one
        [row] = await gw.usage()
        assert (row.status, row.backend, row.attempts) == ("bad_gateway", "m#0", 1)


async def test_a_stream_ended_before_its_answer_is_an_error_not_a_short_answer(tmp_path: Path) -> None:
    async with FakeBackend(default=Truncate(after=3)) as a, FakeBackend() as b, \
            gateway(tmp_path, [chat_model("m", a.url, b.url, routing="round-robin")]) as gw:
        with pytest.raises(BackendError) as ended:
            await gw.stream_chat(WHO, "m")
        assert ended.value.code == "stream_truncated" and not b.received


async def test_a_caller_leaving_a_stream_stops_the_backends_work(tmp_path: Path) -> None:
    async with FakeBackend(default=Stall(after=2)) as a, gateway(tmp_path, [chat_model("m", a.url)]) as gw:
        stream = await gw.inference.stream(WHO, Endpoint.CHAT, {"model": "m", "messages": MESSAGES, "stream": True})
        await anext(stream)
        await stream.aclose()  # what the HTTP layer does when the client disconnects
        await a.wait_until(lambda: a.received[0].outcome == "abandoned")  # the upstream connection was dropped
        a.default = Answer()
        await gw.chat(WHO, "m")
        assert gw.registry.get("m").pool.states[0].failures == 0  # a caller leaving is not the backend failing
        assert [call.outcome for call in a.received] == ["abandoned", "finished"]
        assert [row.status for row in await gw.usage()] == ["client_closed", "ok"]


# -- circuit breakers and health checks -----------------------------------------------------------------------


async def test_a_backend_is_taken_out_after_failure_threshold_failures(tmp_path: Path) -> None:
    async with FakeBackend() as a, FakeBackend() as b, gateway(tmp_path, [chat_model(
            "m", a.url, b.url, routing="round-robin", failure_threshold=2, cooldown_s=60)]) as gw:
        a.script(Fail(500), Fail(500))
        for _ in range(8):
            await gw.chat(WHO, "m")
        assert len(a.received) == 2 and len(b.received) == 8  # out after its second failure in a row
        assert all(row.status == "ok" for row in await gw.usage())


async def test_a_success_between_failures_keeps_a_backend_in(tmp_path: Path) -> None:
    async with FakeBackend() as a, FakeBackend() as b, gateway(tmp_path, [chat_model(
            "m", a.url, b.url, routing="round-robin", failure_threshold=2, cooldown_s=60)]) as gw:
        a.script(Fail(500), Answer(), Fail(500), Answer())  # never two failures in a row
        served = await _served_by(gw, 8)  # a's turns: the odd calls
        assert len(a.received) == 4 and served.count("m#0") == 2


async def test_after_the_cooldown_one_trial_call_decides(tmp_path: Path) -> None:
    async with FakeBackend() as a, FakeBackend() as b, gateway(tmp_path, [chat_model(
            "m", a.url, b.url, routing="round-robin", failure_threshold=1, cooldown_s=0.5)]) as gw:
        a.script(Fail(500), Fail(500))
        await gw.chat(WHO, "m")  # a fails: out
        await asyncio.sleep(0.6)
        for _ in range(4):
            await gw.chat(WHO, "m")
        assert len(a.received) == 2  # one trial, failed: out again at once
        await asyncio.sleep(0.6)
        for _ in range(4):
            await gw.chat(WHO, "m")
        assert len(a.received) == 2 + 2  # the trial succeeded: back in turn


async def test_a_health_check_brings_a_recovered_backend_back_at_once(tmp_path: Path) -> None:
    async with FakeBackend() as a, FakeBackend() as b, gateway(tmp_path, [chat_model(
            "m", a.url, b.url, routing="round-robin", failure_threshold=1, cooldown_s=60)]) as gw:
        a.script(Fail(500))
        await gw.chat(WHO, "m")
        await _served_by(gw, 2)
        assert len(a.received) == 1
        assert await gw.registry.health() == {"m[0]": True, "m[1]": True}
        await _served_by(gw, 2)
        assert len(a.received) == 2


async def test_a_backend_failing_its_health_check_is_out_before_a_caller_pays(tmp_path: Path) -> None:
    async with FakeBackend(healthy=False) as a, FakeBackend() as b, gateway(tmp_path, [chat_model(
            "m", a.url, b.url, routing="round-robin", cooldown_s=60)]) as gw:
        assert await gw.registry.health() == {"m[0]": False, "m[1]": True}
        served = await _served_by(gw, 4)
        assert served == ["m#1"] * 4 and not a.received


async def test_a_backend_out_of_one_models_pool_still_serves_another_model(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        a, b, c = [await stack.enter_async_context(FakeBackend()) for _ in range(3)]
        gw = await stack.enter_async_context(gateway(tmp_path, [
            chat_model("m", a.url, c.url, routing="round-robin", failure_threshold=1, cooldown_s=60),
            chat_model("autre", b.url, a.url, routing="round-robin")]))
        a.script(Fail(500))
        for _ in range(3):
            await gw.chat(WHO, "m")  # a fails once: out of m's pool
        for _ in range(2):
            await gw.chat(WHO, "autre")  # b, then a: autre's pool has its own breakers
        assert (len(a.received), len(b.received), len(c.received)) == (2, 1, 3)
