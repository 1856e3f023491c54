"""The request id: taken from ``X-Request-Id`` when sane, else made; returned on every response (errors and
streams too), kept in the call's usage row, carried into the jobs a request enqueues. And the logs a real
server writes in JSON: one object per line, the request id on each, one line per backend failure and per
circuit change, no key, no prompt, no static asset."""
from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import TEST_LIMITS
from tests.e2e.test_usage import _new_user, _rows
from tests.support.documents import pdf, wait_ingested
from tests.support.servers import Server, start_server, stop

MADE = re.compile(r"[0-9a-f]{32}")
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def test_the_client_id_comes_back_and_lands_in_the_usage_row(any_server: Server, admin: httpx.Client) -> None:
    _, key = _new_user(admin)
    client = openai.OpenAI(base_url=any_server.base_url, api_key=key, max_retries=0)
    messages = [{"role": "user", "content": "x"}]
    raw = client.chat.completions.with_raw_response.create(model="remote-chat", messages=messages,
                                                           extra_headers={"X-Request-Id": "abc-123"})
    assert raw.headers["x-request-id"] == "abc-123"
    assert raw.parse().choices[0].message.content
    made = client.chat.completions.with_raw_response.create(model="remote-chat", messages=messages)
    made_id = made.headers["x-request-id"]
    assert MADE.fullmatch(made_id)
    insane = client.embeddings.with_raw_response.create(model="remote-embed", input="x",
                                                        extra_headers={"X-Request-Id": "a" * 129})
    assert MADE.fullmatch(insane.headers["x-request-id"]) and insane.headers["x-request-id"] != made_id
    rows = sorted(_rows(any_server, key, 3), key=lambda r: r["id"])
    assert [r["request_id"] for r in rows] == ["abc-123", made_id, insane.headers["x-request-id"]]


def test_errors_and_streams_carry_the_id_too(server: Server) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key=server.admin_key, max_retries=0)
    messages = [{"role": "user", "content": "x"}]
    with pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(model="remote-fail", messages=messages,
                                       extra_headers={"X-Request-Id": "err-1"})
    assert failed.value.response.headers["x-request-id"] == "err-1"
    assert failed.value.response.status_code == 502
    with client.chat.completions.with_streaming_response.create(
            model="remote-chat", messages=messages, stream=True, extra_headers={"X-Request-Id": "sse-1"}) as stream:
        assert stream.headers["x-request-id"] == "sse-1"
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert any(line.startswith("data: ") for line in stream.iter_lines())
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for response in (http.get("/v1/models"), http.get("/no-such-page"), http.get("/health"),
                         http.post("/v1/chat/completions", content=b"{", headers={
                             "Authorization": f"Bearer {server.admin_key}", "Content-Type": "application/json"})):
            assert MADE.fullmatch(response.headers["x-request-id"]), (response.request.url, response.headers)
        assert http.get("/health", headers={"X-Request-Id": "probe:1"}).headers["x-request-id"] == "probe:1"


@pytest.fixture(scope="module")
def json_server(tmp_path_factory: pytest.TempPathFactory, catalogue: Path) -> Iterator[Server]:
    """A server logging JSON at INFO, as under a log collector."""
    server = start_server(tmp_path_factory.mktemp("json-logs"), config=catalogue, extra_env={
        **TEST_LIMITS, "SOCLE_LOG_FORMAT": "json", "SOCLE_LOG_LEVEL": "info"})
    yield server
    stop(server.process)


def _entries(server: Server) -> list[dict[str, Any]]:
    lines = (server.data_dir / "server.log").read_text(errors="replace").splitlines()
    entries = []
    for line in lines:
        if line.startswith("{"):
            entries.append(json.loads(line))
    return entries


def _wait_for(server: Server, found: Any, timeout_s: float = 20) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while not found(entries := _entries(server)):
        assert time.monotonic() < deadline, entries[-20:]
        time.sleep(0.2)
    return entries


def test_json_logs_carry_request_ids_and_name_failing_backends(json_server: Server, tmp_path: Path) -> None:
    prompt = f"confidential prompt {secrets.token_hex(8)}"
    client = openai.OpenAI(base_url=json_server.base_url, api_key=json_server.admin_key, max_retries=0)
    for attempt in range(3):  # the model's failure threshold: its circuit opens
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="remote-named", messages=[{"role": "user", "content": prompt}],
                                           extra_headers={"X-Request-Id": f"fail-{attempt}"})
    with httpx.Client(base_url=json_server.base_url, timeout=60,
                      headers={"Authorization": f"Bearer {json_server.admin_key}"}) as http:
        assert http.get(json_server.url + "/ui/static/socle.css").status_code == 200
        assert http.get(json_server.url + "/health", headers={"X-Request-Id": "probe-7"}).status_code == 200
        collection = http.post("/collections", json={"name": "journaux"}).json()["id"]
        document = _upload(http, collection, pdf(tmp_path / "guide.pdf"), "upload-42")
        wait_ingested(http, [document])

    entries = _wait_for(json_server, lambda es: any(e.get("request_id") == "upload-42" and
                                                    e["logger"] == "socle.rag" for e in es))
    text = (json_server.data_dir / "server.log").read_text(errors="replace")
    assert all(line.startswith("{") for line in text.splitlines() if line.strip()), text[:2000]  # from the start
    notice = next(e for e in entries if e["message"].startswith("First administrator created"))
    assert notice["logger"] == "socle.setup" and "admin.key" in notice["message"]
    assert all(ISO_UTC.fullmatch(e["timestamp"]) and e["level"] and e["logger"] for e in entries)
    failures = [e for e in entries if e.get("event") == "backend_failed" and e.get("model") == "remote-named"]
    assert [(e["request_id"], e["backend"], e["error"]) for e in failures] == [
        (f"fail-{i}", "gpu-paris-1", "bad_gateway (backend_error)") for i in range(3)]
    opened = [e for e in entries if e.get("event") == "circuit_opened" and e.get("model") == "remote-named"]
    assert len(opened) == 1 and opened[0]["request_id"] == "fail-2" and opened[0]["backend"] == "gpu-paris-1"
    access = [e for e in entries if e["logger"] == "uvicorn.access"]
    assert any(e["path"] == "/health" and e["request_id"] == "probe-7" and e["status"] == 200 for e in access)
    assert not any("/ui/static/" in e["path"] for e in access)  # static assets stay out by default
    ingested = [e for e in entries if e["logger"] == "socle.rag" and "chunks from" in e["message"]]
    assert ingested and ingested[0]["request_id"] == "upload-42"  # the job's log names the request that queued it
    assert json_server.admin_key not in text and json_server.admin_key[:16] not in text
    assert prompt not in text and "Bearer" not in text
    assert not any("127.0.0.1" in e["message"] for e in failures + opened)  # a label, never the address


def _upload(http: httpx.Client, collection: int, path: Path, request_id: str) -> int:
    with path.open("rb") as handle:
        response = http.post("/documents", files={"file": (path.name, handle)}, data={"collection": str(collection)},
                             headers={"X-Request-Id": request_id})
    assert response.status_code in (200, 201, 202), response.text
    assert response.headers["x-request-id"] == request_id
    return int(response.json()["id"])
