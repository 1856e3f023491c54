"""The in-process model runs off the event loop: while it generates, the server keeps answering, and
waiting generations are served first come, first served."""
from __future__ import annotations

import asyncio

import httpx
import openai

from tests.support.servers import Server

# SmolLM2's special tokens (<|endoftext|>, <|im_start|>, <|im_end|>) forbidden: the generation runs its length.
NO_END = {"0": -100, "1": -100, "2": -100}


def _client(server: Server) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url, api_key=server.admin_key, max_retries=0, timeout=300)


async def test_the_server_answers_while_the_model_generates(server: Server) -> None:
    async with _client(server) as client, httpx.AsyncClient(base_url=server.url) as http:
        long = asyncio.create_task(client.completions.create(
            model="smollm2-135m", prompt="1, 2, 3, 4,", max_tokens=400, logit_bias=NO_END))
        await asyncio.sleep(0.5)
        assert (await http.get("/health")).status_code == 200
        remote = await client.chat.completions.create(model="remote-chat", messages=[{"role": "user", "content": "x"}])
        assert remote.choices[0].message.content
        assert not long.done(), "the other calls must not wait for the generation"
        result = await long
        assert result.usage.completion_tokens == 400


async def test_waiting_generations_are_served_in_arrival_order(server: Server) -> None:
    finished: list[int] = []

    async def ask(client: openai.AsyncOpenAI, index: int) -> None:
        await client.completions.create(model="smollm2-135m", prompt=f"Story {index}:", max_tokens=60,
                                        logit_bias=NO_END)
        finished.append(index)

    async with _client(server) as client:
        tasks = []
        for index in range(4):
            tasks.append(asyncio.create_task(ask(client, index)))
            await asyncio.sleep(0.1)
        await asyncio.gather(*tasks)
    assert finished == [0, 1, 2, 3]
