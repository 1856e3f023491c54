"""The deployment artefacts, built once per run: the wheel, the offline wheelhouse, the container image
(on a base made from Debian's packages: no registry is reachable here) and the Docker daemon they need."""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import ROOT

IMAGE = "socle-ia:deploy-test"
BASE = "socle-base:bookworm"


def clean_env(**extra: str) -> dict[str, str]:
    """This machine's environment without the platform's settings nor pip's local configuration (a test of
    an offline install must see the wheelhouse alone)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOCLE_", "PIP_", "VIRTUAL_ENV"))}
    return env | {"PIP_CONFIG_FILE": "/dev/null", "PIP_DISABLE_PIP_VERSION_CHECK": "1"} | extra


def run(*args: str | Path, timeout: float = 1800, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """A command that must succeed; its output is in the failure's message."""
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                            **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    return result


def make(target: str, *variables: str) -> None:
    run("make", "-s", "-C", ROOT, target, *variables, env=clean_env())


@pytest.fixture(scope="session")
def wheel() -> Path:
    make("wheel")
    (found,) = (ROOT / "dist").glob("socle_ia-*.whl")
    return found


@pytest.fixture(scope="session")
def wheelhouse(wheel: Path) -> Path:
    make("wheelhouse")
    return ROOT / "dist" / "wheelhouse"


@pytest.fixture(scope="session")
def docker() -> str:
    """A Docker daemon (started without a bridge or iptables rules when none answers)."""
    assert shutil.which("dockerd") and shutil.which("docker"), "apt-get install docker.io docker-compose debootstrap"
    run(ROOT / "deploy" / "container" / "start-dockerd.sh", timeout=120)
    return "docker"


@pytest.fixture(scope="session")
def image(docker: str, wheelhouse: Path) -> Iterator[str]:
    """The platform's image, built by `make image` on a Debian-made base (cached in ~/.cache/socle-deploy)."""
    run(ROOT / "deploy" / "container" / "debian-base.sh", BASE, timeout=1200)
    make("image", f"BASE={BASE}", f"IMAGE={IMAGE}")
    yield IMAGE
