"""`make run` serves the embedded models with no network at all (a namespace with loopback only)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.servers import ROOT, free_port

CLIENT = textwrap.dedent("""
    import sys, time, httpx, openai
    url, key_file = sys.argv[1], sys.argv[2]
    for _ in range(600):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    client = openai.OpenAI(base_url=url + "/v1", api_key=open(key_file).read().strip(), max_retries=0)
    reply = client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": "Hi"}],
                                           max_tokens=8)
    vector = client.embeddings.create(model="multilingual-e5-small", input="bonjour").data[0].embedding
    print("ANSWER", bool(reply.choices[0].message.content), len(vector))
""")


def test_make_run_then_a_request_works_without_network(tmp_path: Path) -> None:
    assert shutil.which("unshare") and shutil.which("ip") and shutil.which("make")
    port = free_port()
    client = tmp_path / "client.py"
    client.write_text(CLIENT)
    data = tmp_path / "data"
    script = f"""
        set -e
        ip link set lo up
        if curl -s -m 2 https://pypi.org >/dev/null 2>&1; then echo "NETWORK REACHABLE"; exit 1; fi
        SOCLE_DATA_DIR={data} SOCLE_PORT={port} make -s -C {ROOT} run > {tmp_path}/run.log 2>&1 &
        {sys.executable} {client} http://127.0.0.1:{port} {data}/admin.key
        kill %1
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCLE_")}
    result = subprocess.run(["unshare", "--net", "--fork", "bash", "-c", script], capture_output=True, text=True,
                            timeout=300, env=env)
    log = (tmp_path / "run.log").read_text() if (tmp_path / "run.log").exists() else ""
    assert result.returncode == 0, result.stdout + result.stderr + log
    assert "ANSWER True 384" in result.stdout
    assert "First administrator created" in log
    assert (data / "admin.key").stat().st_mode & 0o777 == 0o600
