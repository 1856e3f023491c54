"""The systemd units of a VM install: ``systemd-analyze verify`` accepts them (no unknown key, no bad value),
and they say what matters: migrations first and once, a dedicated user, a hardened sandbox writable only in
the data directory, and a stop that leaves the graceful shutdown time to finish."""
from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from socle.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
NAMES = ["socle-migrate.service", "socle-api.service", "socle-worker.service"]
INSTALLED = "/opt/socle/bin/socle"

pytestmark = pytest.mark.deploy


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string((UNITS / name).read_text())
    return parser


def _seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "min": 60, "h": 3600}
    for suffix in sorted(units, key=len, reverse=True):
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * units[suffix]
    return float(value)


def test_systemd_accepts_every_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze (Debian's systemd package) verifies the units"
    socle = Path(sys.executable).parent / "socle"  # the units' binary, where this checkout installed it
    for name in NAMES:
        text = (UNITS / name).read_text()
        assert INSTALLED in text
        (tmp_path / name).write_text(text.replace(INSTALLED, str(socle)))
    done = subprocess.run([analyze, "verify", "--man=no", *(str(tmp_path / n) for n in NAMES)],
                          capture_output=True, text=True, timeout=60)
    # verify exits 0 on an unknown key or a bad value, but says so: nothing may be said about these units.
    complaints = [line for line in (done.stdout + done.stderr).splitlines() if str(tmp_path) in line
                  or any(n in line for n in NAMES)]
    assert done.returncode == 0 and not complaints, done.stdout + done.stderr


def test_migrations_run_once_before_the_api_and_the_worker() -> None:
    migrate = _unit("socle-migrate.service")
    assert migrate["Service"]["Type"] == "oneshot" and migrate["Service"]["RemainAfterExit"] == "yes"
    assert migrate["Service"]["ExecStart"].split()[1:] == ["db", "upgrade"]
    assert set(migrate["Unit"]["Before"].split()) == {"socle-api.service", "socle-worker.service"}
    for name, command in [("socle-api.service", "serve"), ("socle-worker.service", "worker")]:
        unit = _unit(name)
        assert unit["Service"]["ExecStart"].split()[1:] == [command]
        assert "socle-migrate.service" in unit["Unit"]["After"].split()
        assert "socle-migrate.service" in unit["Unit"]["Requires"].split()
        assert unit["Service"]["Environment"] == "SOCLE_MIGRATE_ON_START=false"


@pytest.mark.parametrize("name", NAMES)
def test_each_unit_runs_as_its_own_user_in_a_hardened_sandbox(name: str) -> None:
    service = _unit(name)["Service"]
    assert service["User"] == "socle" and service["Group"] == "socle"
    assert service["EnvironmentFile"] == "/etc/socle/socle.env"
    assert service["ProtectSystem"] == "strict" and service["ReadWritePaths"] == "/var/lib/socle"
    for key in ("NoNewPrivileges", "PrivateTmp", "ProtectHome", "PrivateDevices", "ProtectKernelTunables",
                "ProtectKernelModules", "ProtectControlGroups", "RestrictSUIDSGID", "LockPersonality"):
        assert service[key] == "yes", key
    assert service["CapabilityBoundingSet"] == "" and service["AmbientCapabilities"] == ""
    assert service["WorkingDirectory"] == "/var/lib/socle"


@pytest.mark.parametrize("name", ["socle-api.service", "socle-worker.service"])
def test_a_stop_leaves_the_graceful_shutdown_its_time(name: str) -> None:
    service = _unit(name)["Service"]
    assert service["KillSignal"] == "SIGTERM"
    assert _seconds(service["TimeoutStopSec"]) > Settings().shutdown_grace_s
    assert service["Restart"] == "on-failure"


def test_the_example_environment_file_names_only_known_settings() -> None:
    known = {f"SOCLE_{field.upper()}" for field in Settings.model_fields}
    lines = [line for line in (UNITS / "socle.env.example").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    names = {line.split("=", 1)[0] for line in lines}
    assert {n for n in names if n.startswith("SOCLE_")} <= known
    assert "SOCLE_RUN_JOBS=false" in lines  # the worker unit runs the jobs
