"""compose.yaml: the full file is valid for docker-compose 1.29 (every profile), and, run against this
machine's PostgreSQL (pgvector) and Redis in place of its own, the migration runs once, the API answers a chat
completion and the separate worker ingests a document."""
from __future__ import annotations

import json
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from rich.console import Console

from tests.deploy.conftest import clean_env, run
from tests.support.servers import ROOT, free_port

pytestmark = pytest.mark.deploy

CATALOGUE = """
models:
  - {id: smollm2-135m, type: chat, backends: [{type: llamacpp}], max_context_length: 4096}
  - {id: multilingual-e5-small, type: embeddings, backends: [{type: e5}]}
"""
# PostgreSQL and Redis are this machine's: the services of the same names only wait for them.
OVERRIDE = """
services:
  postgres:
    image: {image}
    entrypoint: ["python3", "-c", "import time; time.sleep(10 ** 6)"]
    healthcheck:
      test: ["CMD", "python3", "-c", "import socket; socket.create_connection(('127.0.0.1', {pg_port}), 2)"]
      interval: 1s
  redis:
    image: {image}
    entrypoint: ["python3", "-c", "import time; time.sleep(10 ** 6)"]
    healthcheck:
      test: ["CMD", "python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 6379), 2)"]
      interval: 1s
"""


def _env_file(**values: str) -> str:
    """.env.example with the values of this machine: the production file itself is what the test runs."""
    lines = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        name = line.split("=", 1)[0]
        lines.append(f"{name}={values.pop(name)}" if "=" in line and name in values else line)
    return "\n".join(lines + [f"{k}={v}" for k, v in values.items()]) + "\n"


def test_the_compose_file_is_valid_with_every_profile(tmp_path: Path) -> None:
    assert shutil.which("docker-compose"), "apt-get install docker-compose"
    shutil.copy(ROOT / "compose.yaml", tmp_path)
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    (tmp_path / "deploy" / "compose").mkdir(parents=True)
    shutil.copy(ROOT / "deploy" / "compose" / "models.yaml", tmp_path / "deploy" / "compose")
    run("docker-compose", "config", "--quiet", cwd=tmp_path, env=clean_env())
    services = run("docker-compose", "--profile", "vllm", "--profile", "llamacpp", "config", "--services",
                   cwd=tmp_path, env=clean_env()).stdout.split()
    assert sorted(services) == ["api", "llamacpp", "migrate", "postgres", "redis", "vllm", "worker"]
    resolved = run("docker-compose", "config", cwd=tmp_path, env=clean_env()).stdout
    assert "service_completed_successfully" in resolved and 'SOCLE_RUN_JOBS: "false"' in resolved


@pytest.fixture
def postgres_tcp() -> Iterator[int]:
    """A PostgreSQL with pgvector on 127.0.0.1 (pgserver's, listening on a TCP port for the containers)."""
    import pgserver
    from pgserver._commands import pg_ctl

    data = Path(tempfile.mkdtemp(prefix="socle-pgc-", dir="/tmp"))
    server = pgserver.get_server(data, cleanup_mode="stop")
    port = free_port()
    pg_ctl(["-w", "-o", "-h 127.0.0.1", "-o", f"-p {port}", "-o", f"-k {data}", "-l", str(server.log),
            "restart"], pgdata=server.pgdata, user=server.system_user)
    yield port
    server.cleanup()
    shutil.rmtree(data, ignore_errors=True)


@pytest.mark.slow
def test_compose_migrates_once_serves_and_the_worker_ingests(image: str, postgres_tcp: int, tmp_path: Path) -> None:
    key = run("docker", "run", "--rm", "--network", "host", image, "keys", "generate").stdout.strip()
    port, worker_port = free_port(), free_port()
    shutil.copy(ROOT / "compose.yaml", tmp_path)
    (tmp_path / "deploy" / "compose").mkdir(parents=True)
    (tmp_path / "deploy" / "compose" / "models.yaml").write_text(CATALOGUE)
    (tmp_path / "compose.test.yaml").write_text(OVERRIDE.format(image=image, pg_port=postgres_tcp))
    (tmp_path / ".env").write_text(_env_file(
        SOCLE_IMAGE=image, POSTGRES_PASSWORD="unused",
        SOCLE_DATABASE_URL=f"postgresql+asyncpg://postgres@127.0.0.1:{postgres_tcp}/postgres",
        SOCLE_REDIS_KEY_PREFIX=f"socle-compose-{secrets.token_hex(4)}", SOCLE_PORT=str(port),
        SOCLE_ADMIN_API_KEY=key, SOCLE_UI_COOKIE_SECURE="false", WORKER_PORT=str(worker_port)))
    project = f"socletest{secrets.token_hex(4)}"
    compose = ["docker-compose", "-p", project, "-f", "compose.yaml", "-f", "compose.test.yaml"]
    try:
        run(*compose, "up", "-d", cwd=tmp_path, env=clean_env(), timeout=600)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 240
        while True:
            try:
                if httpx.get(url + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, run(*compose, "logs", "--no-color", cwd=tmp_path).stdout[-6000:]
            time.sleep(1)

        migrations = run("docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={project}",
                         "--filter", "label=com.docker.compose.service=migrate", "--format", "{{.ID}}").stdout.split()
        assert len(migrations) == 1
        state = json.loads(run("docker", "inspect", migrations[0]).stdout)[0]["State"]
        assert not state["Running"] and state["ExitCode"] == 0

        client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=120)
        reply = client.chat.completions.create(model="smollm2-135m", max_tokens=8,
                                               messages=[{"role": "user", "content": "Bonjour"}])
        assert reply.choices[0].message.content

        from socle.client.ingest import Ingester

        document = tmp_path / "note.md"
        document.write_text("# Note\n\nLe socle ingère ce document par son worker.\n")
        ingester = Ingester(url, key)
        try:
            collection = ingester.collection("compose", create=True)
            outcome = ingester.ingest([document], collection, chunk_size=512, chunk_overlap=0, wait=True,
                                      console=Console(file=open("/dev/null", "w")))  # noqa: SIM115
        finally:
            ingester.close()
        assert [d["status"] for d in outcome.documents.values()] == ["ready"]
        worker_log = run(*compose, "logs", "--no-color", "worker", cwd=tmp_path).stdout
        api_log = run(*compose, "logs", "--no-color", "api", cwd=tmp_path).stdout
        # The document was chunked by the worker, never by the API (SOCLE_RUN_JOBS=false); logs are JSON lines.
        assert '"logger": "socle.rag"' in worker_log, worker_log[-4000:]
        # The worker answers on its own port: its health check and its readiness.
        assert httpx.get(f"http://127.0.0.1:{worker_port}/ready", timeout=5).json() == {"status": "ready"}
        assert "socle.rag" not in api_log and '"logger": "uvicorn.error"' in api_log
        assert "Traceback" not in api_log + worker_log, (api_log + worker_log)[-6000:]
    finally:
        subprocess_logs = run(*compose, "logs", "--no-color", cwd=tmp_path, env=clean_env()).stdout
        (tmp_path / "compose.log").write_text(subprocess_logs)
        run(*compose, "down", "-v", "--remove-orphans", cwd=tmp_path, env=clean_env(), timeout=300)
