"""``/v1/batches`` through the official openai SDK against a running server, with the mock backend peer and the
embedded e5: results and errors as files, line-numbered input errors, cancelling, others' batches, and a kill -9
in the middle of a batch of 1,000 requests, resumed with every result present once."""
from __future__ import annotations

import io
import json
import secrets
import time
import zipfile
from pathlib import Path

import httpx
import openai
import pytest

from tests.compliance.people import database_text
from tests.conftest import TEST_LIMITS
from tests.support.servers import Server, start_server, stop

ANSWER = "Bonjour, ceci est une réponse simulée."


def _sdk(server: Server, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key or server.admin_key, max_retries=0, timeout=120)


def _new_key(server: Server) -> str:
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"},
                      timeout=30) as admin:
        user = admin.post("/users", json={"email": f"lots-{secrets.token_hex(4)}@interieur.gouv.fr"}).json()
        return admin.post("/keys", json={"user_id": user["id"]}).json()["key"]


def _chat_line(custom_id: str, model: str = "remote-chat") -> dict:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": f"Message {custom_id}"}]}}


def _upload(client: openai.OpenAI, lines: list[dict] | bytes) -> str:
    content = lines if isinstance(lines, bytes) else b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    return client.files.create(file=("lots.jsonl", io.BytesIO(content)), purpose="batch").id


def _wait(client: openai.OpenAI, batch_id: str, *, until: tuple[str, ...] = ("completed", "failed", "cancelled",
                                                                               "expired"), timeout_s: float = 180):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if batch.status in until:
            return batch
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_id} still {batch.status}: {batch}")


def _lines(client: openai.OpenAI, file_id: str) -> list[dict]:
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines()]


def test_a_chat_batch_writes_its_responses_and_its_errors_as_files(any_server: Server) -> None:
    client = _sdk(any_server, _new_key(any_server))
    lines = [_chat_line(f"demande-{i}") for i in range(20)] + [_chat_line("refusée", "remote-reject")]
    batch = client.batches.create(input_file_id=_upload(client, lines), endpoint="/v1/chat/completions",
                                  completion_window="24h", metadata={"service": "courrier"})
    assert batch.id.startswith("batch_") and batch.object == "batch" and batch.status == "validating"
    assert batch.metadata == {"service": "courrier"} and batch.expires_at == batch.created_at + 24 * 3600
    done = _wait(client, batch.id)
    assert done.status == "completed", done
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (21, 20, 1)
    assert done.in_progress_at and done.finalizing_at and done.completed_at
    outputs = _lines(client, done.output_file_id)
    assert [line["custom_id"] for line in outputs] == [f"demande-{i}" for i in range(20)]
    first = outputs[0]["response"]
    assert first["status_code"] == 200 and first["body"]["choices"][0]["message"]["content"] == ANSWER
    assert first["body"]["usage"]["total_tokens"] > 0
    [error] = _lines(client, done.error_file_id)
    assert error["custom_id"] == "refusée" and error["response"]["status_code"] == 400
    assert "error" in error["response"]["body"]
    assert client.files.retrieve(done.output_file_id).purpose == "batch_output"
    assert batch.id in [b.id for b in client.batches.list(limit=100)]
    page = client.batches.list(limit=1)
    assert [b.id for b in page.data] == [batch.id] and not page.has_more
    usage = _usage(any_server, client.api_key, requests=21)  # each request accounted as an API call of the key
    assert usage["total_albert_coins"] > 0 and usage["total_tokens"] > 0  # cost; no impact data for this model


def _usage(server: Server, key: str, *, requests: int) -> dict:
    """The key's usage once its rows are written (they are written in batches)."""
    deadline = time.monotonic() + 30
    while True:
        usage = httpx.get(f"{server.base_url}/usage", headers={"Authorization": f"Bearer {key}"}, timeout=30).json()
        if usage["total_requests"] >= requests or time.monotonic() > deadline:
            assert usage["total_requests"] == requests, usage
            return usage
        time.sleep(0.3)


def test_bad_input_lines_fail_the_batch_with_their_line_numbers(any_server: Server) -> None:
    client = _sdk(any_server, _new_key(any_server))
    content = b"\n".join([
        json.dumps(_chat_line("a")).encode(),
        b"{pas du json",
        json.dumps(_chat_line("a")).encode(),  # duplicate custom_id
        json.dumps({**_chat_line("b"), "url": "/v1/embeddings"}).encode(),
        json.dumps({"custom_id": "c", "method": "POST", "url": "/v1/chat/completions"}).encode(),
        json.dumps({**_chat_line("d"), "method": "GET"}).encode(),
    ]) + b"\n"
    batch = client.batches.create(input_file_id=_upload(client, content), endpoint="/v1/chat/completions",
                                  completion_window="24h")
    failed = _wait(client, batch.id)
    assert failed.status == "failed" and failed.failed_at and failed.output_file_id is None
    assert failed.error_file_id is None
    assert [f.id for f in client.files.list()] == [batch.input_file_id]  # no result file that nothing names
    found = [(error.line, error.code, error.param) for error in failed.errors.data]
    assert found == [(2, "invalid_json_line", None), (3, "duplicate_custom_id", "custom_id"),
                     (4, "mismatched_url", "url"), (5, "missing_required_parameter", "body"),
                     (6, "invalid_method", "method")]


def test_what_cannot_be_a_batch_is_refused_at_once(any_server: Server) -> None:
    client = _sdk(any_server, _new_key(any_server))
    good = _upload(client, [_chat_line("x")])
    with pytest.raises(openai.BadRequestError, match="endpoint"):
        client.batches.create(input_file_id=good, endpoint="/v1/images", completion_window="24h")  # type: ignore
    with pytest.raises(openai.BadRequestError, match="completion_window"):
        client.batches.create(input_file_id=good, endpoint="/v1/chat/completions",
                              completion_window="1h")  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError):
        client.batches.create(input_file_id="file-999999999", endpoint="/v1/chat/completions",
                              completion_window="24h")
    tuning = client.files.create(file=("t.jsonl", io.BytesIO(b'{"messages": []}\n')), purpose="user_data").id
    with pytest.raises(openai.BadRequestError, match="purpose"):
        client.batches.create(input_file_id=tuning, endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_999999999")
    with pytest.raises(openai.BadRequestError, match="batch_output"):
        client.files.create(file=("o.jsonl", io.BytesIO(b"{}\n")), purpose="batch_output")  # type: ignore


def test_others_batches_and_their_results_are_not_found(any_server: Server) -> None:
    owner, other = _sdk(any_server, _new_key(any_server)), _sdk(any_server, _new_key(any_server))
    batch = owner.batches.create(input_file_id=_upload(owner, [_chat_line("secret")]),
                                 endpoint="/v1/chat/completions", completion_window="24h")
    done = _wait(owner, batch.id)
    assert done.status == "completed"
    for attempt in (lambda: other.batches.retrieve(batch.id), lambda: other.batches.cancel(batch.id),
                    lambda: other.files.content(done.output_file_id),
                    lambda: other.batches.create(input_file_id=done.input_file_id, endpoint="/v1/chat/completions",
                                                 completion_window="24h")):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert batch.id not in [b.id for b in other.batches.list(limit=100)]


def test_cancelling_keeps_what_is_done_and_runs_nothing_more(any_server: Server) -> None:
    client = _sdk(any_server, _new_key(any_server))
    lines = [_chat_line(f"n-{i}") for i in range(1000)]
    batch = client.batches.create(input_file_id=_upload(client, lines), endpoint="/v1/chat/completions",
                                  completion_window="24h")
    deadline = time.monotonic() + 120
    while (seen := client.batches.retrieve(batch.id)).request_counts.completed < 5:
        assert time.monotonic() < deadline and seen.status in ("validating", "in_progress"), seen
        time.sleep(0.05)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled") and cancelling.cancelling_at
    cancelled = _wait(client, batch.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at
    done = cancelled.request_counts.completed
    assert 5 <= done < 1000
    outputs = _lines(client, cancelled.output_file_id)
    assert len(outputs) == done and len({line["custom_id"] for line in outputs}) == done
    named = {cancelled.output_file_id, cancelled.error_file_id} - {None}
    assert {f.id for f in client.files.list(purpose="batch_output")} == named  # none written twice, none orphaned
    time.sleep(1)
    assert client.batches.retrieve(batch.id).request_counts.completed == done  # nothing ran afterwards
    finished = _wait(client, client.batches.create(input_file_id=_upload(client, [_chat_line("fin")]),
                                                   endpoint="/v1/chat/completions", completion_window="24h").id)
    with pytest.raises(openai.ConflictError, match="completed"):
        client.batches.cancel(finished.id)


def test_a_persons_batches_come_in_their_export_and_go_with_them(any_server: Server) -> None:
    with httpx.Client(base_url=any_server.base_url, headers={"Authorization": f"Bearer {any_server.admin_key}"},
                      timeout=60) as admin:
        user = admin.post("/users", json={"email": f"efface-{secrets.token_hex(4)}@interieur.gouv.fr"}).json()
        key = admin.post("/keys", json={"user_id": user["id"]}).json()["key"]
        client = _sdk(any_server, key)
        canary = f"dossier-{secrets.token_hex(6)}"
        batch = client.batches.create(input_file_id=_upload(client, [_chat_line("x")]),
                                      endpoint="/v1/chat/completions", completion_window="24h",
                                      metadata={"dossier": canary})
        done = _wait(client, batch.id)
        assert done.status == "completed"
        paths = [_path(any_server, done.input_file_id), _path(any_server, done.output_file_id)]
        assert all(path.is_file() for path in paths)
        export = httpx.get(f"{any_server.base_url}/me/export", headers={"Authorization": f"Bearer {key}"}, timeout=60)
        with zipfile.ZipFile(io.BytesIO(export.content)) as archive:
            data = json.loads(archive.read("donnees.json"))
        assert [(b["id"], b["metadata"], b["status"]) for b in data["batches"]] == [
            (batch.id, {"dossier": canary}, "completed")]
        assert canary in database_text(any_server)
        assert admin.delete(f"/users/{user['id']}").status_code == 204
        assert canary not in database_text(any_server)
        assert not any(path.exists() for path in paths)  # the input and result files' bytes went with them


def _path(server: Server, file_id: str) -> Path:
    return server.data_dir / "files" / file_id.removeprefix("file-")


def _stored_files(server: Server) -> set[str]:
    return {path.name for path in (server.data_dir / "files").iterdir() if path.is_file()}


def test_a_file_an_unfinished_batch_reads_cannot_be_deleted(any_server: Server) -> None:
    """As a fine-tuning job's file: 409 ``file_in_use`` while the batch may still read it; once ended, it goes."""
    client = _sdk(any_server, _new_key(any_server))
    source = _upload(client, [_chat_line(f"m-{i}") for i in range(1000)])
    batch = client.batches.create(input_file_id=source, endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.ConflictError) as refused:
        client.files.delete(source)
    assert refused.value.code == "file_in_use" and batch.id in refused.value.message
    assert client.files.content(source).content.count(b"\n") == 1000  # still whole
    client.batches.cancel(batch.id)
    cancelled = _wait(client, batch.id)
    assert cancelled.status == "cancelled"
    assert client.files.delete(source).deleted
    for result in {cancelled.output_file_id, cancelled.error_file_id} - {None}:
        assert client.files.delete(result).deleted
    assert list(client.files.list()) == []


def test_a_person_erased_in_the_middle_of_a_batch_leaves_no_file(any_server: Server) -> None:
    """The batch's job, running when its owner is erased, stops and writes no result file for nobody: neither a
    row nor bytes on disk."""
    before = _stored_files(any_server)
    with httpx.Client(base_url=any_server.base_url, headers={"Authorization": f"Bearer {any_server.admin_key}"},
                      timeout=60) as admin:
        user = admin.post("/users", json={"email": f"efface-{secrets.token_hex(4)}@interieur.gouv.fr"}).json()
        client = _sdk(any_server, admin.post("/keys", json={"user_id": user["id"]}).json()["key"])
        batch = client.batches.create(input_file_id=_upload(client, [_chat_line(f"e-{i}") for i in range(1000)]),
                                      endpoint="/v1/chat/completions", completion_window="24h")
        deadline = time.monotonic() + 120
        while (seen := client.batches.retrieve(batch.id)).request_counts.completed < 5:
            assert time.monotonic() < deadline and seen.status in ("validating", "in_progress"), seen
            time.sleep(0.05)
        assert admin.delete(f"/users/{user['id']}").status_code == 204
        with pytest.raises(openai.AuthenticationError):
            client.batches.retrieve(batch.id)
        time.sleep(2)  # the job sees its batch gone between two groups of requests
        assert _stored_files(any_server) <= before


def _quoted_user(server: Server, **quota: object) -> str:
    """A new user's key, under a quota of its own on remote-chat."""
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"},
                      timeout=30) as admin:
        user = admin.post("/users", json={"email": f"quota-lots-{secrets.token_hex(4)}@interieur.gouv.fr"}).json()
        created = admin.post("/quotas", json={"scope": "user", "subject": str(user["id"]), "model": "remote-chat",
                                              **quota})
        assert created.status_code == 201, created.text
        return admin.post("/keys", json={"user_id": user["id"]}).json()["key"]


def test_a_spent_budget_records_the_rest_as_errors(server: Server) -> None:
    """A budget does not come back within the window: the requests it refuses are errors (429, insufficient_quota);
    what it let through is in the output."""
    client = _sdk(server, _quoted_user(server, budget_cost=0.0005, budget_period="day"))  # about 7 calls
    lines = [{**_chat_line(f"b-{i}"), "body": {**_chat_line(f"b-{i}")["body"], "max_tokens": 10}} for i in range(20)]
    done = _wait(client, client.batches.create(input_file_id=_upload(client, lines), endpoint="/v1/chat/completions",
                                               completion_window="24h").id)
    assert done.status == "completed" and done.request_counts.completed + done.request_counts.failed == 20
    assert 1 <= done.request_counts.completed < 20
    errors = _lines(client, done.error_file_id)
    assert len(errors) == done.request_counts.failed
    assert {(e["response"]["status_code"], e["response"]["body"]["error"]["code"]) for e in errors} == {
        (429, "insufficient_quota")}


@pytest.mark.slow
def test_a_rate_limit_makes_the_batch_wait_not_fail(server: Server) -> None:
    """A rate limit refuses for now: the job waits as the limit says and runs the request again."""
    client = _sdk(server, _quoted_user(server, requests_per_minute=3))
    done = _wait(client, client.batches.create(input_file_id=_upload(client, [_chat_line(f"r-{i}") for i in range(5)]),
                                               endpoint="/v1/chat/completions", completion_window="24h").id,
                 timeout_s=240)
    assert done.status == "completed" and (done.request_counts.completed, done.request_counts.failed) == (5, 0)
    assert sorted(line["custom_id"] for line in _lines(client, done.output_file_id)) == [f"r-{i}" for i in range(5)]


def test_an_embeddings_batch_on_the_embedded_e5(server: Server) -> None:
    client = _sdk(server)
    texts = ["passage: La mairie est ouverte le lundi.", "passage: Le permis de construire se demande en ligne."]
    lines = [{"custom_id": f"e-{i}", "method": "POST", "url": "/v1/embeddings",
              "body": {"model": "multilingual-e5-small", "input": text}} for i, text in enumerate(texts)]
    batch = client.batches.create(input_file_id=_upload(client, lines), endpoint="/v1/embeddings",
                                  completion_window="24h")
    done = _wait(client, batch.id)
    assert done.status == "completed" and done.request_counts.completed == 2, done
    outputs = _lines(client, done.output_file_id)
    vectors = [line["response"]["body"]["data"][0]["embedding"] for line in outputs]
    assert [line["custom_id"] for line in outputs] == ["e-0", "e-1"] and {len(v) for v in vectors} == {384}


@pytest.mark.slow
def test_a_batch_killed_in_the_middle_resumes_and_every_result_appears_once(tmp_path: Path, catalogue: Path,
                                                                            own_database: str | None) -> None:
    env = {**TEST_LIMITS, "SOCLE_JOB_LEASE_S": "2", "SOCLE_BATCH_REQUEST_CONCURRENCY": "2"}
    server = start_server(tmp_path / "data", database_url=own_database, config=catalogue, extra_env=env)
    try:
        client = _sdk(server)
        lines = [_chat_line(f"message-{i}") for i in range(1000)]
        batch = client.batches.create(input_file_id=_upload(client, lines), endpoint="/v1/chat/completions",
                                      completion_window="24h")
        deadline = time.monotonic() + 120
        while (seen := client.batches.retrieve(batch.id)).request_counts.completed < 100:
            assert time.monotonic() < deadline and seen.status in ("validating", "in_progress"), seen
            time.sleep(0.05)
        server.process.kill()  # kill -9: no shutdown, the job's lease left behind
        server.process.wait()
    finally:
        stop(server.process)
    assert seen.request_counts.completed < 1000, "the kill came after the batch's end: nothing was interrupted"

    server = start_server(tmp_path / "data", database_url=own_database, config=catalogue, extra_env=env)
    try:
        client = _sdk(server)
        done = _wait(client, batch.id, timeout_s=600)
        assert done.status == "completed", done
        assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (1000, 1000, 0)
        outputs = _lines(client, done.output_file_id)
        assert sorted(line["custom_id"] for line in outputs) == sorted(f"message-{i}" for i in range(1000))
        assert done.error_file_id is None
    finally:
        stop(server.process)
