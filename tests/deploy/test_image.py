"""The container image: non-root, read-only root filesystem, one data volume, its health check, and the three
roles (`serve`, `worker`, `db upgrade`) from the same image."""
from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.deploy.conftest import run
from tests.support.servers import free_port

pytestmark = [pytest.mark.deploy, pytest.mark.slow]


def _docker_run(image: str, volume: str, options: list[str], command: list[str],
                env: dict[str, str] | None = None) -> list[str]:
    """`docker run` as production would: read-only root, tmpfs /tmp, the data volume, no capability."""
    args = ["docker", "run", "--network", "host", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "-v", f"{volume}:/var/lib/socle", *options]
    for name, value in (env or {}).items():
        args += ["-e", f"{name}={value}"]
    return [*args, image, *command]


@pytest.fixture
def volume() -> Iterator[str]:
    name = f"socle-test-{secrets.token_hex(4)}"
    run("docker", "volume", "create", name)
    yield name
    run("docker", "volume", "rm", "-f", name)


def _wait(url: str, container: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        state = json.loads(run("docker", "inspect", container).stdout)[0]["State"]
        assert state["Running"], run("docker", "logs", container).stderr[-4000:]
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer: " + run("docker", "logs", container).stderr[-4000:])


def test_the_image_serves_read_only_as_non_root_and_runs_each_role(image: str, volume: str) -> None:
    key = run("docker", "run", "--rm", "--network", "host", image, "keys", "generate").stdout.strip()
    port = free_port()
    name = f"socle-api-{secrets.token_hex(4)}"
    env = {"SOCLE_PORT": str(port), "SOCLE_ADMIN_API_KEY": key}
    run(*_docker_run(image, volume, ["-d", "--name", name], [], env=env))
    try:
        url = f"http://127.0.0.1:{port}"
        _wait(url + "/health", name)
        _wait(url + "/ready", name)
        assert httpx.get(url + "/ready").json() == {"status": "ready"}
        client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=120)
        reply = client.chat.completions.create(model="smollm2-135m", max_tokens=8,
                                               messages=[{"role": "user", "content": "Bonjour"}])
        assert reply.choices[0].message.content

        info = json.loads(run("docker", "inspect", name).stdout)[0]
        assert info["Config"]["User"] == "10001:10001"
        assert info["HostConfig"]["ReadonlyRootfs"] is True
        assert info["Config"]["Env"].count("SOCLE_DATA_DIR=/var/lib/socle") == 1
        assert "/var/lib/socle" in info["Config"]["Volumes"]
        assert info["Config"]["Entrypoint"] == ["socle"] and info["Config"]["Cmd"] == ["serve", "--host", "0.0.0.0"]
        uid = run("docker", "exec", name, "python3", "-c", "import os; print(os.getuid(), os.getgid())").stdout
        assert uid.split() == ["10001", "10001"]
        deadline = time.monotonic() + 90
        while (health := json.loads(run("docker", "inspect", name).stdout)[0]["State"]["Health"])["Status"] != "healthy":
            assert time.monotonic() < deadline and health["Status"] != "unhealthy", health
            time.sleep(1)

        # The other roles, from the same image and volume, beside the API.
        upgraded = run(*_docker_run(image, volume, ["--rm"], ["db", "upgrade"]))
        assert "head" in upgraded.stdout + upgraded.stderr
        worker = f"socle-worker-{secrets.token_hex(4)}"
        run(*_docker_run(image, volume, ["-d", "--name", worker, "--no-healthcheck"], ["worker"],
                         env={"SOCLE_MIGRATE_ON_START": "false"}))
        try:
            time.sleep(8)
            state = json.loads(run("docker", "inspect", worker).stdout)[0]["State"]
            assert state["Running"], run("docker", "logs", worker).stderr[-4000:]
            run("docker", "stop", "--time", "40", worker, timeout=60)
            state = json.loads(run("docker", "inspect", worker).stdout)[0]["State"]
            assert state["ExitCode"] == 0, run("docker", "logs", worker).stderr[-4000:]
        finally:
            run("docker", "rm", "-f", worker)
        run("docker", "stop", "--time", "40", name, timeout=60)
        assert json.loads(run("docker", "inspect", name).stdout)[0]["State"]["ExitCode"] == 0
    finally:
        logs = run("docker", "logs", name).stderr
        run("docker", "rm", "-f", name)
    assert "Traceback" not in logs, logs[-4000:]
