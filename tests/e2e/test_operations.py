"""Running the platform as operators do, with real processes: readiness and model availability, the first admin
from a secret, the schema migrated by one process and waited for by the others, job workers apart from the API
(stopped mid-job by SIGTERM), and a server that finishes its streams when told to stop."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from socle.identity.keys import new_key
from tests.support.documents import pdf, upload, wait_ingested
from tests.support.servers import SOCLE, free_port, stop, wait_until_up

CATALOGUE = """
models:
  - {{id: remote-chat, type: chat, backends: [{{type: openai, url: "{mock}/v1", model: mock-chat}}]}}
  - {{id: remote-paced, type: chat, backends: [{{type: openai, url: "{mock}/v1", model: mock-paced, timeout_s: 30}}]}}
  - {{id: remote-down, type: chat, backends: [{{type: openai, url: "http://127.0.0.1:{closed_port}/v1"}}]}}
  - {{id: slow-embed, type: embeddings,
     backends: [{{type: openai, url: "{mock}/v1", model: mock-embed-slow, timeout_s: 30}}]}}
"""


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory, mock_backend: str) -> Path:
    path = tmp_path_factory.mktemp("operations") / "models.yaml"
    path.write_text(CATALOGUE.format(mock=mock_backend, closed_port=free_port()))
    return path


@dataclass
class Role:
    """One ``socle`` process (serve, worker, db upgrade) on a shared data directory and database."""

    data_dir: Path
    env: dict[str, str]

    def spawn(self, *args: str, log: str, **extra: str) -> tuple[subprocess.Popen[bytes], Path]:
        path = self.data_dir / log
        process = subprocess.Popen([str(SOCLE), *args], env={**self.env, **extra}, cwd=self.data_dir,
                                   stdout=path.open("wb"), stderr=subprocess.STDOUT)
        return process, path

    def run(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SOCLE), *args], env={**self.env, **extra, "COLUMNS": "300"}, cwd=self.data_dir,
                              capture_output=True, text=True, timeout=300)

    def serve(self, **extra: str) -> tuple[subprocess.Popen[bytes], str, Path]:
        port = free_port()
        process, log = self.spawn("serve", log=f"serve-{port}.log", SOCLE_PORT=str(port), **extra)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(url + "/health", process, log)
        except Exception:
            stop(process)
            raise
        return process, url, log


@pytest.fixture
def role(tmp_path: Path, catalogue: Path, own_database: str | None) -> Iterator[Role]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCLE_")}
    env.update({"SOCLE_DATA_DIR": str(data_dir), "SOCLE_CONFIG": str(catalogue), "SOCLE_LOG_LEVEL": "info",
                "HF_HUB_OFFLINE": "1", "SOCLE_HEALTH_INTERVAL_S": "0.5"})
    if own_database:
        env["SOCLE_DATABASE_URL"] = own_database
    yield Role(data_dir, env)


def test_ready_whatever_the_backends_and_the_first_admin_from_a_secret(role: Role) -> None:
    refused = role.run("serve", SOCLE_ADMIN_API_KEY="sk-socle-0123456789ab_too-short")
    assert refused.returncode == 2 and "SOCLE_ADMIN_API_KEY" in refused.stderr
    assert "too-short" not in refused.stdout + refused.stderr  # a secret, even a bad one, is never echoed
    key = new_key()[0]
    process, url, log = role.serve(SOCLE_ADMIN_API_KEY=key)
    try:
        ready = httpx.get(url + "/ready")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})  # remote-down is down: no matter
        assert not (role.data_dir / "admin.key").exists()  # the deployment keeps its key itself
        client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=30)
        deadline = time.monotonic() + 20
        while True:  # the background health checks find the backend on a closed port down
            available = {model.id: getattr(model, "available") for model in client.models.list()}
            if not available["remote-down"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert available == {"remote-chat": True, "remote-paced": True, "remote-down": False, "slow-embed": True}
        assert client.models.retrieve("remote-down").model_extra == {
            "type": "text-generation", "kind": "chat", "aliases": [], "max_context_length": None, "card": None,
            "available": False}
        answer = client.chat.completions.create(model="remote-chat", messages=[{"role": "user", "content": "Bonjour"}])
        assert answer.choices[0].message.content
        assert httpx.get(url + "/ready").json() == {"status": "ready"}
    finally:
        stop(process)
    secret = key.split("_", 1)[1]
    assert secret not in log.read_text(errors="replace")
    again, url, log = role.serve(SOCLE_ADMIN_API_KEY=new_key()[0])  # users exist: the first admin stays as it was
    try:
        assert openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0).models.list().data
    finally:
        stop(again)


def test_replicas_that_do_not_migrate_wait_for_the_schema_then_give_up(role: Role) -> None:
    started = time.monotonic()
    waiting = role.run("serve", SOCLE_MIGRATE_ON_START="false", SOCLE_SCHEMA_WAIT_S="2")
    assert waiting.returncode == 1 and 2 <= time.monotonic() - started < 120
    assert "Database schema not current" in waiting.stderr and "socle db upgrade" in waiting.stderr
    assert role.run("worker", SOCLE_MIGRATE_ON_START="false", SOCLE_SCHEMA_WAIT_S="1").returncode == 1
    for _ in range(2):  # the migrations job: once, and again with nothing to do
        upgraded = role.run("db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
    assert (role.data_dir / "admin.key").exists()
    unknown = role.run("worker", "--pool", "nowhere")
    assert unknown.returncode == 2 and "ingestion" in unknown.stderr


def test_a_worker_runs_the_jobs_and_hands_them_back_when_stopped(role: Role) -> None:
    upgraded = role.run("db", "upgrade")  # the migrations job; every process then only waits for the schema
    assert upgraded.returncode == 0, upgraded.stderr
    shared = {"SOCLE_MIGRATE_ON_START": "false", "SOCLE_RAG_EMBEDDING_MODEL": "slow-embed",
              "SOCLE_JOB_LEASE_S": "600"}  # a lease that never runs out during the test
    server, url, _ = role.serve(SOCLE_RUN_JOBS="false", **shared)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        key = (role.data_dir / "admin.key").read_text().strip()
        http = httpx.Client(base_url=url + "/v1", headers={"Authorization": f"Bearer {key}"}, timeout=60)
        collection = http.post("/collections", json={"name": "procédures"}).json()["id"]
        document = upload(http, collection, pdf(role.data_dir.parent / "guide.pdf")).json()["id"]
        time.sleep(3)
        assert http.get(f"/documents/{document}").json()["status"] == "queued"  # nobody runs the jobs

        port = free_port()  # the worker's own probes and metrics
        first, first_log = role.spawn("worker", log="worker-1.log", SOCLE_SHUTDOWN_GRACE_S="0.5",
                                      SOCLE_WORKER_PORT=str(port), **shared)
        workers.append(first)
        deadline = time.monotonic() + 120
        while http.get(f"/documents/{document}").json()["status"] != "ready":  # parsed; now being embedded (5 s)
            assert time.monotonic() < deadline and first.poll() is None, first_log.read_text(errors="replace")
            time.sleep(0.2)
        probes = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        assert probes.get("/health").status_code == 200 and probes.get("/ready").json() == {"status": "ready"}
        refused = probes.get("/metrics")
        assert refused.status_code == 401 and refused.json()["error"]["type"] == "invalid_request_error"
        scraped = probes.get("/metrics", headers={"Authorization": f"Bearer {key}"}).text
        assert "socle_ingested_documents_total 1.0" in scraped  # counted where the document was parsed
        assert 'socle_jobs_running{kind="rag.embed"} 1.0' in scraped, scraped
        time.sleep(1)
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0
        told = first_log.read_text(errors="replace")
        assert "SIGTERM received" in told and "handed back to the queue" in told, told
        state = http.get(f"/documents/{document}").json()
        assert state["embedded"] < state["chunks"]

        started = time.monotonic()
        second, _ = role.spawn("worker", "--pool", "ingestion", log="worker-2.log", **shared)
        workers.append(second)
        states = wait_ingested(http, [document], timeout_s=120)
        assert states[document]["status"] == "ready" and states[document]["embedded"] == states[document]["chunks"]
        assert time.monotonic() - started < 120  # at once, not after the 600 s lease
    finally:
        for process in workers:
            stop(process)
        stop(server)


@pytest.mark.parametrize("own_database", ["sqlite"], indirect=True)
def test_a_stream_in_flight_finishes_after_sigterm_and_new_connections_are_refused(role: Role) -> None:
    server, url, log = role.serve(SOCLE_SHUTDOWN_GRACE_S="20")
    key = (role.data_dir / "admin.key").read_text().strip()
    body = {"model": "remote-paced", "stream": True, "messages": [{"role": "user", "content": "Bonjour"}]}
    events: list[str] = []
    try:
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60,
                          headers={"Authorization": f"Bearer {key}"}) as response:
            lines = response.iter_lines()
            for line in lines:
                if line.startswith("data: "):
                    events.append(line)
                    break
            server.send_signal(signal.SIGTERM)  # mid-stream: about 3 s of it left
            time.sleep(0.5)
            with pytest.raises(httpx.ConnectError):  # the listening socket is closed at once
                httpx.get(url + "/health", timeout=5)
            events += [line for line in lines if line.startswith("data: ")]
        assert events[-1] == "data: [DONE]"
        assert sum('"tok' in event for event in events) == 10
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        stop(server)
    assert "Traceback" not in log.read_text(errors="replace")
