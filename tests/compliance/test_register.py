"""The register of processing activities (GDPR art. 30), produced from a running platform's configuration:
every configured backend is a named recipient (its host, never its URL), and the retention periods are the
ones set."""
from __future__ import annotations

import json
import subprocess
import urllib.parse

import yaml

from tests.support.servers import SOCLE, Server


def _register(server: Server, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SOCLE), "compliance", "register", *args], env={**server.env, **env},
                          capture_output=True, text=True, timeout=120)


def test_the_register_names_every_backend_and_the_retention(server: Server) -> None:
    done = _register(server, "--format", "json", SOCLE_RETENTION_CONVERSATIONS_DAYS="90")
    assert done.returncode == 0, done.stderr
    register = json.loads(done.stdout)
    catalogue = yaml.safe_load(open(server.env["SOCLE_CONFIG"], encoding="utf-8"))["models"]
    recipients = {(r["model"], r["where"]) for r in register["recipients"]}
    for model in catalogue:
        for backend in model["backends"]:
            if "url" in backend:
                host = urllib.parse.urlsplit(backend["url"]).netloc
                assert (model["id"], f"serveur {host}") in recipients
            else:
                assert any(m == model["id"] and "sur ce serveur" in where for m, where in recipients)
    assert "/v1" not in done.stdout and "http://" not in done.stdout  # hosts, not addresses
    assert register["retention"]["conversations"] == "90 jours"
    assert register["retention"]["audit"].endswith("jours")
    chat = next(a for a in register["activities"] if a["name"] == "Assistant conversationnel")
    assert "remote-chat" in chat["recipients"] and "90 jours" in chat["retention"]
    assert any("argon2id" in measure for measure in register["security"])

    markdown = _register(server)
    assert markdown.returncode == 0, markdown.stderr
    assert markdown.stdout.startswith("# Registre des activités de traitement")
    assert "| remote-chat | chat | openai |" in markdown.stdout
    assert _register(server, "--format", "pdf").returncode == 2
