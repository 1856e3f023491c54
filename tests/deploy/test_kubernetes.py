"""The Kubernetes manifests: each kustomize overlay renders, every document is valid against the Kubernetes
schemas, and what matters for running it holds (probes, non-root, read-only root, roles, migrations Job,
network policies that deny by default, settings and catalogues the platform accepts)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from socle.settings import Settings, load_catalogue

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
OVERLAYS = ["embedded", "production"]
KUBERNETES_VERSION = "1.33.0"  # one that kubernetes-validate ships schemas for

pytestmark = pytest.mark.deploy


def _render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render the overlays (kubectl kustomize)"
    done = subprocess.run([kubectl, "kustomize", str(KUBE / "overlays" / overlay)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, _render(request.param)


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _kinds(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return container


def _env(docs: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the pod sees it: its ConfigMaps, then its own entries."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(_one(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    env.update({item["name"]: item["value"] for item in container.get("env", []) if "value" in item})
    return env


def test_every_document_is_valid_against_the_kubernetes_schemas(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, docs = rendered
    extra = [yaml.safe_load(path.read_text()) for path in (KUBE / "overlays" / overlay).glob("*.example.yaml")]
    assert docs
    for doc in docs + extra:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:  # names the document and the faulty field
            pytest.fail(f"{overlay}: {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_pods_run_as_non_root_on_a_read_only_root_without_capabilities(
        rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    workloads = _kinds(docs, "Deployment") + _kinds(docs, "Job")
    assert workloads
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert "limits" in container["resources"] and "requests" in container["resources"]
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            volumes = {v["name"]: v for v in pod["volumes"]}
            assert "emptyDir" in volumes[mounts["/tmp"]]  # the one writable place besides the data
            assert volumes[mounts["/var/lib/socle"]]["persistentVolumeClaim"]["claimName"] == "socle-data"


def test_the_api_is_probed_on_health_and_ready_and_drains_before_it_stops(
        rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    api = _one(docs, "Deployment", "socle-api")
    container = _container(api)
    assert container["command"] == ["socle", "serve"]
    (port,) = container["ports"]
    env = _env(docs, container)
    assert port["containerPort"] == int(env["SOCLE_PORT"]) and env["SOCLE_HOST"] == "0.0.0.0"
    probes = {kind: container[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe", "startupProbe")}
    assert probes["livenessProbe"]["path"] == "/health" and probes["startupProbe"]["path"] == "/health"
    assert probes["readinessProbe"]["path"] == "/ready"
    assert all(probe["port"] in (port["name"], port["containerPort"]) for probe in probes.values())
    startup = container["startupProbe"]  # long enough for the wait on the schema
    assert startup["periodSeconds"] * startup["failureThreshold"] > float(env["SOCLE_SCHEMA_WAIT_S"])
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    grace = api["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > float(env["SOCLE_SHUTDOWN_GRACE_S"]) + float(pre_stop[1])
    service = _one(docs, "Service", "socle-api")
    assert service["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] in (port["name"], port["containerPort"])


def test_every_setting_is_one_the_platform_knows_and_every_catalogue_loads(
        rendered: tuple[str, list[dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    overlay, docs = rendered
    monkeypatch.setenv("VLLM_KEY", "from-the-secret")  # the catalogue checks that the key's variable is set
    known = {f"SOCLE_{name.upper()}" for name in Settings.model_fields}
    for workload in _kinds(docs, "Deployment") + _kinds(docs, "Job"):
        env = _env(docs, _container(workload))
        unknown = {name for name in env if name.startswith("SOCLE_")} - known
        assert not unknown, f"{overlay}: {workload['metadata']['name']}: {unknown}"
    example = KUBE / "overlays" / overlay / "secret.example.yaml"
    if example.exists():
        assert set(yaml.safe_load(example.read_text())["stringData"]) - {"VLLM_KEY"} <= known
    for config_map in _kinds(docs, "ConfigMap"):
        if "models.yaml" in config_map["data"]:
            path = tmp_path / f"{overlay}-models.yaml"
            path.write_text(config_map["data"]["models.yaml"])
            assert load_catalogue(path).models


def test_production_splits_the_roles_and_migrates_in_a_job_per_release() -> None:
    docs = _render("production")
    api = _env(docs, _container(_one(docs, "Deployment", "socle-api")))
    assert api["SOCLE_RUN_JOBS"] == "false" and api["SOCLE_MIGRATE_ON_START"] == "false"
    worker = _container(_one(docs, "Deployment", "socle-worker"))
    assert worker["command"] == ["socle", "worker"]
    assert _env(docs, worker)["SOCLE_MIGRATE_ON_START"] == "false"
    # The worker answers its probes (and its own metrics) on SOCLE_WORKER_PORT.
    assert worker["ports"] == [{"name": "probes", "containerPort": int(_env(docs, worker)["SOCLE_WORKER_PORT"])}]
    assert worker["livenessProbe"]["httpGet"] == worker["startupProbe"]["httpGet"] == {"path": "/health",
                                                                                          "port": "probes"}
    (job,) = _kinds(docs, "Job")
    assert _container(job)["command"] == ["socle", "db", "upgrade"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    (image,) = {_container(d)["image"] for d in _kinds(docs, "Deployment") + [job]}
    version = image.rsplit(":", 1)[1]
    assert job["metadata"]["name"] == "socle-migrate-" + version.replace(".", "-")  # one Job per release
    for workload in _kinds(docs, "Deployment") + [job]:
        refs = [s["secretRef"] for s in _container(workload)["envFrom"] if "secretRef" in s]
        assert refs == [{"name": "socle-secrets"}]  # required: no pod starts with a missing secret
    claim = _one(docs, "PersistentVolumeClaim", "socle-data")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # several pods share the uploads
    hpa = _one(docs, "HorizontalPodAutoscaler", "socle-api")
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["spec"]["scaleTargetRef"]["name"] == "socle-api"
    assert hpa["spec"]["minReplicas"] >= 2
    assert _one(docs, "PodDisruptionBudget", "socle-api")["spec"]["minAvailable"] >= 1


def test_the_embedded_demo_is_one_pod_that_migrates_and_runs_its_jobs() -> None:
    docs = _render("embedded")
    api = _one(docs, "Deployment", "socle-api")
    assert api["spec"]["replicas"] == 1 and api["spec"]["strategy"] == {"type": "Recreate"}
    env = _env(docs, _container(api))
    assert env["SOCLE_RUN_JOBS"] == "true" and env["SOCLE_MIGRATE_ON_START"] == "true"
    assert not _kinds(docs, "Job") and not _kinds(docs, "HorizontalPodAutoscaler")
    assert [d["metadata"]["name"] for d in _kinds(docs, "Deployment")] == ["socle-api"]


def test_the_network_is_denied_by_default_and_opened_to_the_ingress_and_dns(
        rendered: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, docs = rendered
    policies = _kinds(docs, "NetworkPolicy")
    deny = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert len(deny) == 1
    assert sorted(deny[0]["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny[0]["spec"] and "egress" not in deny[0]["spec"]
    inbound = [rule for p in policies for rule in p["spec"].get("ingress", [])]
    assert inbound and all(peer.get("namespaceSelector") for rule in inbound for peer in rule["from"])
    assert {port["port"] for rule in inbound for port in rule["ports"]} == {8000}
    outbound = [rule for p in policies for rule in p["spec"].get("egress", [])]
    assert all(rule.get("to") and rule.get("ports") for rule in outbound)  # no "anywhere, any port"
    ports = {port["port"] for rule in outbound for port in rule["ports"]}
    assert 53 in ports
    if overlay == "production":
        assert {5432, 6379, 8000} <= ports


def test_the_ingress_streams_server_sent_events_and_takes_an_upload() -> None:
    docs = _render("production")
    ingress = _one(docs, "Ingress", "socle")
    notes = ingress["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600
    body_limit = notes["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert body_limit.endswith("m")
    assert int(body_limit[:-1]) * 1024 * 1024 >= Settings().max_upload_bytes
    assert ingress["spec"]["tls"] and ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"][
        "name"] == "socle-api"
