"""The Grafana dashboard and the Prometheus alert rules: well formed, and every metric they name is one a
running server really exposes (so that neither drifts from the code)."""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.e2e.test_quotas import _admin, _new_user, _quota
from tests.support.servers import Server, start_server, stop

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
# Metrics of the platform; `up` and kube-state-metrics' are Prometheus's own.
NAME = re.compile(r"\b(?:socle|gen_ai)_[a-z0-9_]*[a-z0-9]\b")
DURATION = re.compile(r"^\d+[smhd]$")

pytestmark = pytest.mark.deploy


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((MONITORING / "prometheus-alerts.yaml").read_text())
    assert set(document) == {"groups"} and document["groups"]
    rules = []
    names = set()
    for group in document["groups"]:
        assert set(group) == {"name", "rules"} and group["name"] not in names and group["rules"], group
        names.add(group["name"])
        rules.extend(group["rules"])
    return rules


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    exprs = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            exprs.append(target["expr"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(variable["definition"])
    return exprs


def test_the_alert_rules_are_well_formed() -> None:
    rules = _rules()
    alerts = [rule["alert"] for rule in rules]
    assert len(set(alerts)) == len(alerts)
    assert {"SocleBackendDown", "SocleJobQueueStuck", "SocleHighErrorRate", "SocleQuotaStoreUnreachable",
            "SocleReplicaDown", "SocleReplicaNotReady"} <= set(alerts)
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"Socle[A-Za-z]+", rule["alert"])
        assert isinstance(rule["expr"], str) and rule["expr"].strip()
        assert rule["expr"].count("(") == rule["expr"].count(")") and rule["expr"].count("{") == rule["expr"].count("}")
        assert DURATION.fullmatch(rule["for"]), rule["for"]
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        for text in rule["annotations"].values():  # Go templates: balanced
            assert text.count("{{") == text.count("}}"), text


def test_the_dashboard_is_well_formed() -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    assert dashboard["uid"] == "socle-ia" and dashboard["title"] and dashboard["schemaVersion"] >= 36
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(set(ids)) == len(ids)
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for topic in ("requests", "errors", "latency", "tokens", "backend up", "jobs", "database pool", "redis"):
        assert topic in titles, topic
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}", panel["title"]
            position = panel["gridPos"]
            assert position["x"] + position["w"] <= 24


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory: pytest.TempPathFactory, catalogue: Path) -> Iterator[Server]:
    """A server with Redis-backed quotas that has served calls (bound by a quota), streams and failures."""
    env = {"SOCLE_REDIS_URL": "redis://127.0.0.1:6379/0", "SOCLE_REDIS_KEY_PREFIX": "socle-test-monitoring",
           "SOCLE_QUOTA_REFRESH_S": "0.2"}
    server = start_server(tmp_path_factory.mktemp("monitoring"), config=catalogue, extra_env=env)
    try:
        with _admin(server) as admin:
            user_id, key = _new_user(admin)
            _quota(admin, scope="user", subject=str(user_id), model="remote-chat", requests_per_minute=1000)
        client = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)
        messages = [{"role": "user", "content": "x"}]
        client.chat.completions.create(model="remote-chat", messages=messages)
        list(client.chat.completions.create(model="remote-chat", messages=messages, stream=True))
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(model="remote-fail", messages=messages)
        yield server
    finally:
        stop(server.process)


def _exposed(server: Server) -> tuple[set[str], set[str]]:
    """The metric names a scrape shows (with a histogram's series), and the label names of its samples."""
    text = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {server.admin_key}"}).text
    names: set[str] = set()
    labels: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "histogram":
                names.update(f"{name}_{suffix}" for suffix in ("bucket", "count", "sum"))
        elif line and not line.startswith("#"):
            sample = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?", line)
            assert sample
            names.add(sample.group(1))
            labels.update(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', sample.group(2) or ""))
    return names, labels


def test_every_metric_named_is_exposed(busy_server: Server) -> None:
    names, labels = _exposed(busy_server)
    assert {"socle_jobs_oldest_wait_seconds", "socle_redis_duration_seconds_bucket", "socle_backend_up",
            "socle_db_pool_checked_out", "socle_ingested_chunks_total"} <= names
    sources = {f"rule {rule['alert']}": rule["expr"] for rule in _rules()}
    sources.update({f"dashboard {i}": expr for i, expr in enumerate(_dashboard_exprs())})
    named = 0
    for where, expr in sources.items():
        for name in set(NAME.findall(expr)) - labels:
            named += 1
            assert name in names, f"{where} names {name}, which /metrics does not expose"
    assert named > 30
