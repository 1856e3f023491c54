"""Real processes for end-to-end tests: the platform (``socle serve``) and the mock backend."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
SOCLE = Path(sys.executable).parent / "socle"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {timeout_s} s:\n{log.read_text(errors='replace')[-4000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Server:
    """A running ``socle serve`` with its data directory and the first admin's key."""

    url: str
    data_dir: Path
    admin_key: str
    database_url: str
    process: subprocess.Popen[bytes]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the ``socle`` command against this server's database and configuration."""
        env = {**self.env, "COLUMNS": "300"}  # rich tables at full width
        return subprocess.run([str(SOCLE), *args], env=env, capture_output=True, text=True, timeout=120)


def start_mock_backend(log_dir: Path, *, port: int | None = None,
                       latency_ms: float = 0) -> tuple[str, subprocess.Popen[bytes]]:
    port = port or free_port()
    log = log_dir / f"mock-{port}.log"
    command = [sys.executable, "-m", "tests.support.mock_backend", "--port", str(port), "--latency-ms", str(latency_ms)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url + "/stats", process, log)
    return url, process


def start_server(data_dir: Path, *, database_url: str | None = None, config: Path | None = None,
                 extra_env: dict[str, str] | None = None) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCLE_")}
    env.update({"SOCLE_DATA_DIR": str(data_dir), "SOCLE_PORT": str(port), "SOCLE_LOG_LEVEL": "warning",
                "HF_HUB_OFFLINE": "1"})
    if database_url:
        env["SOCLE_DATABASE_URL"] = database_url
    if config:
        env["SOCLE_CONFIG"] = str(config)
    env.update(extra_env or {})
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "server.log"
    process = subprocess.Popen([str(SOCLE), "serve"], env=env, cwd=data_dir, stdout=log.open("wb"),
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url + "/health", process, log)
    except Exception:
        stop(process)
        raise
    key = (data_dir / "admin.key").read_text().strip()
    return Server(url=url, data_dir=data_dir, admin_key=key, database_url=database_url or "", process=process,
                  env=env)
