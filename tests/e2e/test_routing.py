"""Routing across several backends (mock peers started here): strategies, failover, recovery."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.servers import Server, free_port, start_mock_backend, start_server, stop

CATALOGUE = """
models:
  - id: rr-chat
    type: chat
    routing: round-robin
    backends: [{{type: openai, url: "{a}/v1", model: mock-chat}}, {{type: openai, url: "{b}/v1", model: mock-chat}},
               {{type: openai, url: "{c}/v1", model: mock-chat}}]
  - id: weighted-chat
    type: chat
    routing: weighted
    backends: [{{type: openai, url: "{a}/v1", model: mock-chat, weight: 1}},
               {{type: openai, url: "{b}/v1", model: mock-chat, weight: 3}}]
  - id: lb-chat
    type: chat
    routing: least-busy
    backends: [{{type: openai, url: "{slow}/v1", model: mock-chat}}, {{type: openai, url: "{c}/v1", model: mock-chat}}]
  - id: ha-chat
    type: chat
    failure_threshold: 2
    cooldown_s: 60
    backends: [{{type: openai, url: "{k}/v1", model: mock-chat, timeout_s: 5}}, {{type: openai, url: "{c}/v1", model: mock-chat}}]
  - id: ha-stream
    type: chat
    backends: [{{type: openai, url: "{k}/v1", model: mock-endless}}, {{type: openai, url: "{c}/v1", model: mock-endless}}]
  - id: all-down
    type: chat
    backends: [{{type: openai, url: "http://127.0.0.1:{closed1}/v1"}}, {{type: openai, url: "http://127.0.0.1:{closed2}/v1"}}]
"""


class Mocks:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.processes: dict[str, httpx.Response | object] = {}
        self.urls: dict[str, str] = {}
        self.killable_port = free_port()

    def start(self, name: str, **options: object) -> None:
        url, process = start_mock_backend(self.directory, **options)  # type: ignore[arg-type]
        self.urls[name], self.processes[name] = url, process

    def requests(self, name: str) -> int:
        return int(httpx.get(self.urls[name] + "/stats").json()["requests"])


@pytest.fixture(scope="module")
def mocks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mocks]:
    mocks = Mocks(tmp_path_factory.mktemp("mocks"))
    for name in "abc":
        mocks.start(name)
    mocks.start("slow", latency_ms=300)
    mocks.start("k", port=mocks.killable_port)
    yield mocks
    for process in mocks.processes.values():
        stop(process)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, mocks: Mocks) -> Iterator[Server]:
    config = tmp_path_factory.mktemp("routing") / "models.yaml"
    config.write_text(CATALOGUE.format(**mocks.urls, closed1=free_port(), closed2=free_port()))
    server = start_server(tmp_path_factory.mktemp("routing-server"), config=config,
                          extra_env={"SOCLE_HEALTH_INTERVAL_S": "0.5"})
    yield server
    stop(server.process)


def _chat(server: Server, model: str) -> openai.types.chat.ChatCompletion:
    client = openai.OpenAI(base_url=server.base_url, api_key=server.admin_key, max_retries=0)
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])


def _counts(mocks: Mocks, names: str | list[str]) -> dict[str, int]:
    return {name: mocks.requests(name) for name in names}


def test_round_robin_spreads_evenly(gateway: Server, mocks: Mocks) -> None:
    before = _counts(mocks, "abc")
    for _ in range(30):
        _chat(gateway, "rr-chat")
    after = _counts(mocks, "abc")
    assert {name: after[name] - before[name] for name in "abc"} == {"a": 10, "b": 10, "c": 10}


def test_weighted_follows_the_weights(gateway: Server, mocks: Mocks) -> None:
    before = _counts(mocks, "ab")
    for _ in range(400):
        _chat(gateway, "weighted-chat")
    after = _counts(mocks, "ab")
    share_b = (after["b"] - before["b"]) / 400
    assert after["a"] - before["a"] + after["b"] - before["b"] == 400
    assert 0.65 < share_b < 0.85  # 0.75 expected; the bounds are over 5 standard deviations wide


async def test_least_busy_avoids_the_slow_backend(gateway: Server, mocks: Mocks) -> None:
    before = _counts(mocks, ["slow", "c"])
    async with openai.AsyncOpenAI(base_url=gateway.base_url, api_key=gateway.admin_key, max_retries=0) as client:
        async def worker() -> None:
            for _ in range(10):
                await client.chat.completions.create(model="lb-chat", messages=[{"role": "user", "content": "x"}])

        await asyncio.gather(*(worker() for _ in range(4)))
    after = _counts(mocks, ["slow", "c"])
    slow, fast = after["slow"] - before["slow"], after["c"] - before["c"]
    assert slow + fast == 40
    assert fast > 2 * slow


def test_all_backends_down_is_a_502(gateway: Server) -> None:
    with pytest.raises(openai.InternalServerError) as error:
        _chat(gateway, "all-down")
    assert error.value.status_code == 502


def test_a_backend_killed_mid_run_then_back(gateway: Server, mocks: Mocks) -> None:
    headers = {"Authorization": f"Bearer {gateway.admin_key}"}
    body = {"model": "ha-stream", "messages": [{"role": "user", "content": "x"}], "stream": True}
    with httpx.Client(base_url=gateway.base_url, headers=headers, timeout=30) as http:
        # Four streams open, spread over both backends (least busy), each past its first event.
        streams = [http.stream("POST", "/chat/completions", json=body) for _ in range(4)]
        responses = [s.__enter__() for s in streams]
        lines = [r.iter_lines() for r in responses]
        on_k = [f"mock-{mocks.killable_port}" in next(line for line in it if line.startswith("data:")) for it in lines]
        assert sorted(on_k) == [False, False, True, True]

        mocks.processes["k"].kill()  # type: ignore[attr-defined]
        mocks.processes["k"].wait()  # type: ignore[attr-defined]

        # Requests that had not started yet: no client error, the other backend answers.
        for _ in range(10):
            assert _chat(gateway, "ha-chat").choices[0].message.content

        # The streams K was serving end with an error event and a clean close; the others go on.
        for killed, iterator, stream in zip(on_k, lines, streams):
            if killed:
                events = [line for line in iterator if line.startswith("data:")]  # read to the end
                assert '"error"' in events[-1] and all("[DONE]" not in e for e in events)
            else:
                events = [line for _, line in zip(range(6), iterator) if line.startswith("data:")]
                assert events and all('"error"' not in e for e in events)
            stream.__exit__(None, None, None)

    # K comes back on the same port: the health checks bring it back into rotation.
    mocks.start("k", port=mocks.killable_port)
    deadline = time.monotonic() + 15
    while mocks.requests("k") == 0 and time.monotonic() < deadline:
        _chat(gateway, "ha-chat")
        time.sleep(0.1)
    assert mocks.requests("k") > 0
