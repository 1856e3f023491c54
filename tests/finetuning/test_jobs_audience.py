"""Who sees a model with an audience (a fine-tuned model): its owner, the members of the groups it is shared with,
everyone once it is published; anyone else gets the usual 404, in the listing, on reading it and on calling it.
Through the real inference path (registry, service, usage) against a scripted OpenAI-compatible backend."""
from __future__ import annotations

from pathlib import Path

import pytest

from socle.errors import NotFound
from tests.support.fake_backend import FakeBackend
from tests.support.gateway import caller, chat_model, gateway

OWNER, COLLEAGUE, STRANGER = caller(1, group_ids=[10]), caller(2, group_ids=[10, 11]), caller(3, group_ids=[12])


async def test_a_model_kept_for_its_owner_is_unknown_to_others(tmp_path: Path) -> None:
    async with FakeBackend() as fake, gateway(tmp_path, [
            chat_model("base", fake.url),
            chat_model("ft:base:agent1:essai:ftjob-1", fake.url, audience={"owner_id": 1}),
            chat_model("ft:base:agent1:groupe:ftjob-2", fake.url, audience={"owner_id": 1, "group_ids": [10]}),
            chat_model("ft:base:agent1:tous:ftjob-3", fake.url, audience={"owner_id": 1, "public": True})]) as gw:
        def visible(who: object) -> list[str]:
            return [m.id for m in gw.inference.list_models(who)]  # type: ignore[arg-type]

        assert visible(OWNER) == ["base", "ft:base:agent1:essai:ftjob-1", "ft:base:agent1:groupe:ftjob-2",
                                  "ft:base:agent1:tous:ftjob-3"]
        assert visible(COLLEAGUE) == ["base", "ft:base:agent1:groupe:ftjob-2", "ft:base:agent1:tous:ftjob-3"]
        assert visible(STRANGER) == ["base", "ft:base:agent1:tous:ftjob-3"]

        for who, model in ((STRANGER, "ft:base:agent1:essai:ftjob-1"), (STRANGER, "ft:base:agent1:groupe:ftjob-2"),
                           (COLLEAGUE, "ft:base:agent1:essai:ftjob-1")):
            with pytest.raises(NotFound) as unknown:
                gw.inference.get_model(who, model)
            assert (unknown.value.code, unknown.value.message) == ("model_not_found",
                                                                   f"The model '{model}' does not exist.")
            with pytest.raises(NotFound):
                await gw.chat(who, model)
        assert len(fake.received) == 0  # a refused call reaches no backend

        answer = await gw.chat(OWNER, "ft:base:agent1:essai:ftjob-1")
        assert answer["model"] == "ft:base:agent1:essai:ftjob-1"
        assert (await gw.chat(COLLEAGUE, "ft:base:agent1:groupe:ftjob-2"))["choices"]
        assert (await gw.chat(STRANGER, "ft:base:agent1:tous:ftjob-3"))["choices"]
        # Accounted like any model (the refused calls not at all): the usage rows name it, with its tokens.
        rows = [row for row in await gw.usage() if row.model.startswith("ft:")]
        assert [(row.model, row.user_id, row.status) for row in rows] == [
            ("ft:base:agent1:essai:ftjob-1", 1, "ok"), ("ft:base:agent1:groupe:ftjob-2", 2, "ok"),
            ("ft:base:agent1:tous:ftjob-3", 3, "ok")]
        assert all(row.prompt_tokens > 0 for row in rows)

