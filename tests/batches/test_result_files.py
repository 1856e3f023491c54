"""A batch's result files on real SQLite and PostgreSQL, at the moments a running server cannot be stopped at on
purpose: the batch erased while its results are being written, a crash between writing them and ending the
batch. No result file is ever left that no batch names; a file an unfinished batch reads or writes stays."""
from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import delete

from socle.batches.runner import BatchRunner, Collaborators
from socle.db.models import Batch
from socle.endpoints import Endpoint, Json
from socle.errors import Conflict, InvalidRequest
from socle.identity.permissions import Principal
from socle.platform import Platform
from tests.files.test_file_service import person, platform  # noqa: F401  (the fixture)

LINES = b"".join(json.dumps({"custom_id": name, "method": "POST", "url": "/v1/chat/completions",
                             "body": {"model": "m", "messages": [{"role": "user", "content": name}]}}).encode()
                 + b"\n" for name in ("bon", "refus"))


class Crash(Exception):
    pass


async def _answer(_: Principal, __: Endpoint, body: Json) -> Json:
    if body["messages"][0]["content"] == "refus":
        raise InvalidRequest("Refusé.", param="messages")
    return {"object": "chat.completion", "choices": [{"message": {"role": "assistant", "content": "oui"}}]}


def _runner(p: Platform, owner: Principal, write: Any) -> BatchRunner:
    async def principal_of(_: int) -> Principal:
        return owner

    return BatchRunner(p.batches.store, Collaborators(read_input=p.files.content_for_owner, write_output=write,
                                                      discard_output=p.files.discard_output,
                                                      principal_of=principal_of, call=_answer),
                       concurrency=2, max_requests=100)


async def _batch(p: Platform, owner: Principal) -> tuple[int, int]:
    source = await p.files.create(owner, "lots.jsonl", LINES, "batch")
    batch = await p.batches.create(owner, input_file_id=source.id, endpoint="/v1/chat/completions",
                                   completion_window="24h", metadata=None)
    return source.id, batch.id


def _on_disk(p: Platform) -> set[int]:
    return {int(path.name) for path in p.files.directory.iterdir() if path.name.isdigit()}


async def test_a_batch_erased_while_its_results_are_written_leaves_no_file(platform: Platform) -> None:  # noqa: F811
    owner = await person(platform, "lots-a@x.gouv.fr")
    source, batch_id = await _batch(platform, owner)

    async def write_then_erased(principal: Principal, name: str, content: bytes) -> int:
        file_id = await platform.files.create_output(principal, name, content)
        async with platform.sessions() as session, session.begin():  # the owner's erasure, at that moment
            await session.execute(delete(Batch).where(Batch.id == batch_id))
        return file_id

    await _runner(platform, owner, write_then_erased).run({"batch": batch_id})
    assert [f.id for f in await platform.files.list(owner)] == [source]
    assert _on_disk(platform) == {source}


async def test_a_crash_between_writing_and_ending_reuses_the_written_file(platform: Platform) -> None:  # noqa: F811
    owner = await person(platform, "lots-b@x.gouv.fr")
    source, batch_id = await _batch(platform, owner)
    written: list[int] = []

    async def crash_on_the_second(principal: Principal, name: str, content: bytes) -> int:
        if written:
            raise Crash  # the process dies before the error file is written
        written.append(await platform.files.create_output(principal, name, content))
        return written[0]

    with pytest.raises(Crash):
        await _runner(platform, owner, crash_on_the_second).run({"batch": batch_id})
    interrupted = await platform.batches.store.load(batch_id)
    assert interrupted is not None and interrupted.status == "finalizing"
    assert interrupted.output_file_id == written[0]
    for file_id in (source, written[0]):  # the batch has not finished: its input and its output stay
        with pytest.raises(Conflict) as refused:
            await platform.files.delete(owner, file_id)
        assert refused.value.code == "file_in_use" and f"batch_{batch_id}" in refused.value.message

    await _runner(platform, owner, platform.files.create_output).run({"batch": batch_id})  # taken up again
    done = await platform.batches.store.load(batch_id)
    assert done is not None and done.status == "completed" and done.output_file_id == written[0]
    outputs = {f.id for f in await platform.files.list(owner, purpose="batch_output")}
    assert outputs == {done.output_file_id, done.error_file_id}  # one of each: nothing written twice
    assert _on_disk(platform) == {source} | outputs
    [error] = [json.loads(line) for line in (await platform.files.content(owner, done.error_file_id)).splitlines()]
    assert error["custom_id"] == "refus" and error["response"]["status_code"] == 400
    for file_id in (source, *outputs):  # finished: the files may go
        await platform.files.delete(owner, file_id)
    assert _on_disk(platform) == set()
