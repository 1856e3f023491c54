"""What a first start leaves behind, and what the server shows of itself: the first admin's key goes to a
terminal and to data/admin.key, never to a log; the API's documentation is served without any outside
asset, or not at all; a key sent in a query string never reaches the access log."""
from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import SOCLE, Server, free_port, start_server, stop

CATALOGUE = """models:
  - {{id: remote-chat, type: chat, backends: [{{type: openai, url: "{mock}/v1", model: mock-chat}}]}}
"""


@pytest.fixture(scope="module")
def small_catalogue(tmp_path_factory: pytest.TempPathFactory, mock_backend: str) -> Path:
    path = tmp_path_factory.mktemp("first-start-config") / "models.yaml"
    path.write_text(CATALOGUE.format(mock=mock_backend))
    return path


@pytest.fixture(scope="module")
def logged_server(tmp_path_factory: pytest.TempPathFactory, small_catalogue: Path) -> Iterator[Server]:
    """A first start with its output going to a file, as under a container runtime or systemd."""
    server = start_server(tmp_path_factory.mktemp("logged"), config=small_catalogue,
                          extra_env={"SOCLE_LOG_LEVEL": "info"})
    yield server
    stop(server.process)


def _log(server: Server) -> str:
    return (server.data_dir / "server.log").read_text(errors="replace")


def test_the_first_admin_key_is_written_to_its_file_never_to_the_log(logged_server: Server) -> None:
    key_file = logged_server.data_dir / "admin.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert logged_server.admin_key.startswith("sk-socle-")
    log = _log(logged_server)
    assert "First administrator created" in log and str(key_file) in log
    assert logged_server.admin_key not in log and logged_server.admin_key[:20] not in log


def test_the_first_admin_key_is_shown_on_a_terminal(tmp_path: Path, small_catalogue: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCLE_")}
    env.update({"SOCLE_DATA_DIR": str(tmp_path), "SOCLE_PORT": str(free_port()),
                "SOCLE_CONFIG": str(small_catalogue), "SOCLE_LOG_LEVEL": "warning"})
    leader, follower = pty.openpty()
    process = subprocess.Popen([str(SOCLE), "serve"], env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
                               stdout=follower, stderr=follower)
    os.close(follower)
    shown = b""
    try:
        deadline = time.monotonic() + 60
        while b"sk-socle-" not in shown or not shown.rstrip(b" ").endswith(b"\n"):
            assert time.monotonic() < deadline and process.poll() is None, shown.decode(errors="replace")
            if select.select([leader], [], [], 0.2)[0]:
                shown += os.read(leader, 4096)
    finally:
        stop(process)
        os.close(leader)
    key = (tmp_path / "admin.key").read_text().strip()
    assert re.search(rf"^{re.escape(key)}\s*$", shown.decode(errors="replace"), re.MULTILINE), shown


def test_the_documentation_needs_nothing_from_outside(logged_server: Server) -> None:
    with httpx.Client(base_url=logged_server.url, timeout=30) as http:
        for page in ("/docs", "/redoc"):
            html = http.get(page)
            assert html.status_code == 200
            assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
            assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets), assets
            assert "https://" not in html.text and "cdn" not in html.text.lower()
            for asset in assets:
                assert http.get(asset).status_code == 200, asset
        assert http.get("/openapi.json").json()["info"]["title"] == "Socle IA"


def test_the_documentation_can_be_turned_off(tmp_path: Path, small_catalogue: Path) -> None:
    server = start_server(tmp_path / "data", config=small_catalogue, extra_env={"SOCLE_API_DOCS": "false"})
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
                assert http.get(path).status_code == 404, path
            listed = http.get("/v1/models", headers={"Authorization": f"Bearer {server.admin_key}"})
            assert listed.status_code == 200
    finally:
        stop(server.process)


def test_a_key_in_the_query_string_never_reaches_the_access_log(logged_server: Server) -> None:
    secret = "sk-socle-querysecret0123456789"
    with httpx.Client(base_url=logged_server.url, timeout=30) as http:
        assert http.get(f"/v1/models?api_key={secret}&limit=7").status_code == 401
        assert http.get(f"/v1/models?API%5FKEY={secret}").status_code == 401
    deadline = time.monotonic() + 10
    while "limit=7" not in _log(logged_server) and time.monotonic() < deadline:
        time.sleep(0.1)
    log = _log(logged_server)
    assert "/v1/models?api_key=[redacted]&limit=7" in log and "API%5FKEY=[redacted]" in log
    assert secret not in log
