"""Shared fixtures: real servers on SQLite and on PostgreSQL, a mock backend, the openai SDK."""
from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import openai
import pytest

from tests.support.servers import Server, start_mock_backend, start_server, stop

# A PostgreSQL with pgvector: SOCLE_TEST_POSTGRES names one (postgresql://user@host:port/db), else the
# PostgreSQL bundled in the pgserver package is started for the run (the machine's may lack pgvector).
POSTGRES_ADMIN_DSN = os.environ.get("SOCLE_TEST_POSTGRES")

CATALOGUE = """
models:
  - {{id: smollm2-135m, type: chat, backends: [{{type: llamacpp}}], max_context_length: 4096,
     impact: {{active_params_b: 0.135}}}}
  - {{id: multilingual-e5-small, type: embeddings, backends: [{{type: e5}}], aliases: [e5-small]}}
  - {{id: multilingual-e5-small-rerank, type: rerank, backends: [{{type: e5}}]}}
  - id: remote-chat
    type: chat
    backends: [{{type: openai, url: "{mock}/v1", model: mock-chat, timeout_s: 5}}]
    pricing: {{input_per_million: 2.0, output_per_million: 6.0}}
  - {{id: remote-embed, type: embeddings, backends: [{{type: openai, url: "{mock}/v1", model: mock-embed}}]}}
  - {{id: remote-fail, type: chat, backends: [{{type: openai, url: "{mock}/v1", model: mock-fail}}]}}
  - {{id: remote-reject, type: chat, backends: [{{type: openai, url: "{mock}/v1", model: mock-reject}}]}}
  - {{id: remote-slow, type: chat, backends: [{{type: openai, url: "{mock}/v1", model: mock-slow, timeout_s: 1}}]}}
  - {{id: remote-midfail, type: chat, backends: [{{type: openai, url: "{mock}/v1", model: mock-midfail}}]}}
  - {{id: remote-endless, type: chat, backends: [{{type: openai, url: "{mock}/v1", model: mock-endless}}]}}
  - {{id: remote-garbage, type: chat, backends: [{{type: openai, url: "{mock}/v1", model: mock-garbage}}]}}
  - {{id: remote-flaky, type: chat, backends: [{{type: openai, url: "{mock}/v1", model: mock-flaky}}]}}
  - {{id: remote-truncated, type: chat, backends: [{{type: openai, url: "{mock}/v1", model: mock-truncated}}]}}
  - {{id: remote-multiline, type: chat, backends: [{{type: openai, url: "{mock}/v1", model: mock-multiline}}]}}
  - {{id: remote-huge, type: chat, backends: [{{type: openai, url: "{mock}/v1", model: mock-huge}}]}}
  - {{id: remote-named, type: chat, backends: [{{type: openai, url: "{mock}/v1", model: mock-fail, name: gpu-paris-1}}]}}
  - {{id: remote-down, type: chat, backends: [{{type: openai, url: "http://127.0.0.1:{closed_port}/v1"}}]}}
  - {{id: remote-embed-down, type: embeddings, backends: [{{type: openai, url: "http://127.0.0.1:{closed_port}/v1"}}]}}
"""

TEST_LIMITS = {"SOCLE_MAX_BODY_BYTES": "65536", "SOCLE_MAX_TOKENS_LIMIT": "1024", "SOCLE_MAX_UPLOAD_BYTES": str(2 * 1024 * 1024),
               "SOCLE_FILES_MAX_BYTES": str(1024 * 1024), "SOCLE_FILES_FINE_TUNE_MAX_BYTES": str(256 * 1024)}


@pytest.fixture(scope="session")
def mock_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url, process = start_mock_backend(tmp_path_factory.mktemp("mock"))
    yield url
    stop(process)


@pytest.fixture(scope="session")
def catalogue(tmp_path_factory: pytest.TempPathFactory, mock_backend: str) -> Path:
    from tests.support.servers import free_port

    path = tmp_path_factory.mktemp("config") / "models.yaml"
    path.write_text(CATALOGUE.format(mock=mock_backend, closed_port=free_port()))
    return path


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[str]:
    """The administrative DSN of a PostgreSQL server with pgvector, for the whole run."""
    if POSTGRES_ADMIN_DSN:
        yield POSTGRES_ADMIN_DSN
        return
    import pgserver

    data = Path(tempfile.mkdtemp(prefix="socle-pg-", dir="/tmp"))  # short: it holds the server's socket
    server = pgserver.get_server(data, cleanup_mode="stop")
    yield f"postgresql://postgres@/postgres?host={data}"
    server.cleanup()
    shutil.rmtree(data, ignore_errors=True)


def _on_postgres(admin_dsn: str, statement: str) -> None:
    """Run one administrative statement, from sync or async fixtures alike (in a thread of its own)."""
    async def run() -> None:
        connection = await asyncpg.connect(admin_dsn)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


def database_url(admin_dsn: str, name: str) -> str:
    """The SQLAlchemy URL of database ``name`` on the server of ``admin_dsn``."""
    parts = urllib.parse.urlsplit(admin_dsn)
    return urllib.parse.urlunsplit(("postgresql+asyncpg", parts.netloc, f"/{name}", parts.query, ""))


@pytest.fixture
def postgres_database(postgres_admin: str) -> Iterator[str]:
    """A PostgreSQL database of one test's own (services tested without a server), dropped after it."""
    name = f"socle_unit_{secrets.token_hex(4)}"
    _on_postgres(postgres_admin, f'CREATE DATABASE "{name}"')
    yield database_url(postgres_admin, name)
    _on_postgres(postgres_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def own_database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The database of a server a test starts (and restarts) itself, on each store in turn: None (a SQLite
    file in the server's data directory) or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        yield None
        return
    admin = request.getfixturevalue("postgres_admin")
    name = f"socle_own_{secrets.token_hex(4)}"
    _on_postgres(admin, f'CREATE DATABASE "{name}"')
    yield database_url(admin, name)
    _on_postgres(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url(postgres_admin: str) -> Iterator[str]:
    """The PostgreSQL database of this run's PostgreSQL server, dropped at the end."""
    name = f"socle_test_{secrets.token_hex(4)}"
    _on_postgres(postgres_admin, f'CREATE DATABASE "{name}"')
    yield database_url(postgres_admin, name)
    _on_postgres(postgres_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory, catalogue: Path) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("sqlite-server"), config=catalogue, extra_env=TEST_LIMITS)
    yield server
    stop(server.process)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory, catalogue: Path, postgres_url: str) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("postgres-server"), config=catalogue, database_url=postgres_url,
                          extra_env=TEST_LIMITS)
    yield server
    stop(server.process)


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def any_server(request: pytest.FixtureRequest) -> Server:
    """Each test using it runs once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_server")


@pytest.fixture(scope="session")
def server(sqlite_server: Server) -> Server:
    return sqlite_server


@pytest.fixture
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=server.admin_key, max_retries=0, timeout=120)


@pytest.fixture
def admin(any_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=any_server.base_url, headers={"Authorization": f"Bearer {any_server.admin_key}"},
                      timeout=60) as http:
        yield http


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory, catalogue: Path) -> Iterator[Server]:
    """Two worker processes sharing their quota counters in the real Redis (keys under a unique prefix)."""
    env = {"SOCLE_WORKERS": "2", "SOCLE_REDIS_URL": "redis://127.0.0.1:6379/0",
           "SOCLE_REDIS_KEY_PREFIX": f"socle-test-{secrets.token_hex(4)}", "SOCLE_QUOTA_REFRESH_S": "0.5"}
    server = start_server(tmp_path_factory.mktemp("redis-server"), config=catalogue, extra_env=env)
    yield server
    stop(server.process)
