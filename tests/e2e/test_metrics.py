"""Prometheus /metrics: GenAI semantic-convention names, protected, summed over worker processes; jobs that
nobody takes are logged and counted; the job queues, ingestion, the database pool and the quota store (Redis)
after real activity."""
from __future__ import annotations

import asyncio
import re
import secrets
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.e2e.test_quotas import _admin, _new_user, _quota
from tests.support.documents import pdf, upload, wait_ingested
from tests.support.servers import Server, start_server, stop


def _scrape(server: Server) -> str:
    response = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {server.admin_key}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def _value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_follow_the_genai_conventions(server: Server) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key=server.admin_key, max_retries=0)
    before = _scrape(server)
    for _ in range(3):
        client.chat.completions.create(model="remote-chat", messages=[{"role": "user", "content": "x"}])
    list(client.chat.completions.create(model="remote-chat", messages=[{"role": "user", "content": "x"}], stream=True))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="remote-fail", messages=[{"role": "user", "content": "x"}])
    text = _scrape(server)

    def delta(name: str, **labels: str) -> float:
        return _value(text, name, **labels) - _value(before, name, **labels)

    chat = {"gen_ai_operation_name": "chat", "gen_ai_request_model": "remote-chat"}
    assert delta("socle_requests_total", status="ok", **chat) == 4
    assert delta("gen_ai_server_request_duration_seconds_count", error_type="", **chat) == 4
    assert delta("gen_ai_server_request_duration_seconds_count", gen_ai_request_model="remote-fail",
                 error_type="bad_gateway") == 1
    assert delta("gen_ai_server_time_to_first_token_seconds_count", **chat) == 1  # streams only
    assert delta("gen_ai_client_token_usage_sum", gen_ai_token_type="output", **chat) == 3 * 7 + 5
    assert _value(text, "socle_backend_up", gen_ai_request_model="remote-chat", backend="remote-chat#0") == 1
    assert _value(text, "socle_backend_up", gen_ai_request_model="remote-named", backend="gpu-paris-1") == 1
    assert re.search(r'^socle_backend_in_flight\{', text, re.MULTILINE)
    assert re.search(r'^socle_backend_queue_depth\{.*gen_ai_request_model="smollm2-135m"', text, re.MULTILINE)


def test_metrics_are_protected(server: Server) -> None:
    assert httpx.get(server.url + "/metrics").status_code == 401
    with _admin(server) as admin:
        _, key = _new_user(admin)
    assert httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {key}"}).status_code == 403


async def test_counters_sum_over_workers_and_count_refusals(redis_server: Server) -> None:
    with _admin(redis_server) as admin:
        user_id, key = _new_user(admin)
        _quota(admin, scope="user", subject=str(user_id), model="remote-embed", requests_per_minute=30,
               tokens_per_minute=10**6)  # tokens are charged after each call: a settlement in Redis
    await asyncio.sleep(1)
    before = _scrape(redis_server)
    async with openai.AsyncOpenAI(base_url=redis_server.base_url, api_key=key, max_retries=0) as client:
        results = await asyncio.gather(*(client.embeddings.create(model="remote-embed", input="x") for _ in range(40)),
                                       return_exceptions=True)
    assert sum(isinstance(r, openai.RateLimitError) for r in results) == 10
    text = _scrape(redis_server)
    labels = {"gen_ai_operation_name": "embeddings", "gen_ai_request_model": "remote-embed"}
    ok = _value(text, "socle_requests_total", status="ok", **labels) - _value(before, "socle_requests_total",
                                                                                 status="ok", **labels)
    assert ok == 30  # both workers' calls, whichever answered the scrape
    refused = _value(text, "socle_quota_refusals_total", gen_ai_request_model="remote-embed") - _value(
        before, "socle_quota_refusals_total", gen_ai_request_model="remote-embed")
    assert refused == 10
    # Every admission went to Redis (the refused ones too), every admitted call was settled there; none failed.
    admits = {"operation": "admit"}
    assert (_value(text, "socle_redis_duration_seconds_count", **admits)
            - _value(before, "socle_redis_duration_seconds_count", **admits)) == 40
    settles = {"operation": "settle"}
    assert (_value(text, "socle_redis_duration_seconds_count", **settles)
            - _value(before, "socle_redis_duration_seconds_count", **settles)) == 30
    seconds = (_value(text, "socle_redis_duration_seconds_sum", **admits)
               - _value(before, "socle_redis_duration_seconds_sum", **admits))
    assert 0 < seconds < 40 * 0.5  # each admission under the store's timeout
    assert _value(text, "socle_redis_errors_total") == 0


def test_an_unreachable_quota_store_is_counted(tmp_path: Path, catalogue: Path) -> None:
    """Redis down (nothing listens on its port): a quota-bound call is refused, and the failure counted."""
    from tests.support.servers import free_port
    env = {"SOCLE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "SOCLE_QUOTA_REFRESH_S": "0.2",
           "SOCLE_REDIS_TIMEOUT_S": "0.2"}
    server = start_server(tmp_path / "data", config=catalogue, extra_env=env)
    try:
        with _admin(server) as admin:
            user_id, key = _new_user(admin)
            _quota(admin, scope="user", subject=str(user_id), model="remote-embed", requests_per_minute=30)
        time.sleep(0.5)
        client = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)
        for _ in range(2):
            with pytest.raises(openai.APIStatusError) as refused:
                client.embeddings.create(model="remote-embed", input="x")
            assert refused.value.status_code == 503
        text = _scrape(server)
        assert _value(text, "socle_redis_errors_total", operation="admit") == 2
        assert _value(text, "socle_redis_duration_seconds_count", operation="admit") == 2
    finally:
        stop(server.process)


def test_ingestion_job_queues_and_the_database_pool(any_server: Server, admin: httpx.Client, tmp_path: Path) -> None:
    before = _scrape(any_server)
    collection = admin.post("/collections", json={"name": f"métriques {secrets.token_hex(3)}"}).json()["id"]
    good = upload(admin, collection, pdf(tmp_path / "guide.pdf")).json()["id"]
    (tmp_path / "corrupt.pdf").write_bytes(b"%PDF-1.7\n" + secrets.token_bytes(4000))
    bad = upload(admin, collection, tmp_path / "corrupt.pdf").json()["id"]
    states = wait_ingested(admin, [good, bad])
    assert states[good]["status"] == "ready" and states[bad]["status"] == "failed"
    text = _scrape(any_server)

    def delta(name: str, **labels: str) -> float:
        return _value(text, name, **labels) - _value(before, name, **labels)

    assert delta("socle_ingested_documents_total") == 1
    assert delta("socle_ingested_chunks_total") == states[good]["chunks"] > 0
    ingest = {"kind": "rag.ingest"}
    assert delta("socle_jobs_given_up", **ingest) == 1  # the corrupt file: failed for good
    for name in ("socle_jobs_queued", "socle_jobs_running", "socle_jobs_waiting", "socle_jobs_stalled",
                 "socle_jobs_retrying", "socle_jobs_oldest_wait_seconds"):
        assert re.search(rf'^{name}\{{kind="rag\.ingest"\}} ', text, re.MULTILINE), name
        assert re.search(rf'^{name}\{{kind="rag\.embed"\}} ', text, re.MULTILINE), name  # known kinds, even idle
    assert _value(text, "socle_jobs_waiting", **ingest) == 0  # all done: nothing waits
    size = float(re.search(r"^socle_db_pool_size (\S+)$", text, re.MULTILINE).group(1))  # type: ignore[union-attr]
    used = float(re.search(r"^socle_db_pool_checked_out (\S+)$", text, re.MULTILINE).group(1))  # type: ignore[union-attr]
    assert size >= 5 and 0 <= used <= 2 * size  # the scrape's own session may be one of them


def test_a_job_nobody_takes_is_logged_once_and_counted(tmp_path: Path, own_database: str | None) -> None:
    """With no ingestion worker anywhere, an accepted document's job waits: past SOCLE_JOB_STALL_S it is
    logged once, with its kind, and /metrics shows it waiting and stalled."""
    env = {"SOCLE_INGESTION_WORKERS": "0", "SOCLE_JOB_STALL_S": "1"}
    server = start_server(tmp_path / "data", database_url=own_database, extra_env=env)
    try:
        with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"},
                          timeout=60) as http:
            collection = http.post("/collections", json={"name": "en attente"}).json()["id"]
            document = upload(http, collection, pdf(tmp_path / "guide.pdf")).json()
        deadline = time.monotonic() + 30
        while _value(metrics := _scrape(server), "socle_jobs_stalled", kind="rag.ingest") < 1:
            assert time.monotonic() < deadline, metrics
            time.sleep(0.2)
        assert _value(metrics, "socle_jobs_waiting", kind="rag.ingest") == 1
        assert _value(metrics, "socle_jobs_queued", kind="rag.ingest") == 1
        assert _value(metrics, "socle_jobs_running", kind="rag.ingest") == 0
        assert _value(metrics, "socle_jobs_oldest_wait_seconds", kind="rag.ingest") >= 1
        time.sleep(1)  # a few more looks at the queue: the job is not logged again
        log = (server.data_dir / "server.log").read_text()
        assert len(re.findall(r"job \d+ \(rag\.ingest\) has waited \d+ s to start", log)) == 1, log[-3000:]
        with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"},
                          timeout=60) as http:
            assert http.get(f"/documents/{document['id']}").json()["status"] == "queued"
    finally:
        stop(server.process)
