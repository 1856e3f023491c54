"""The wheel carries everything the platform reads at run time, and installs offline from the wheelhouse."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.deploy.conftest import clean_env, run
from tests.support.servers import ROOT

pytestmark = pytest.mark.deploy
SKIPPED = {"package.json", "package-lock.json"}  # npm's inputs of the DSFR target, not read at run time


def _package_files() -> set[str]:
    """Every file under socle/ that the platform may read: sources, templates, migrations, data, assets."""
    return {path.relative_to(ROOT).as_posix() for path in (ROOT / "socle").rglob("*")
            if path.is_file() and "__pycache__" not in path.parts and "node_modules" not in path.parts
            and path.name not in SKIPPED and not path.name.startswith(".")}


def test_the_wheel_holds_the_dsfr_templates_migrations_and_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for asset in ("dsfr.min.css", "dsfr.module.min.js", "dsfr.nomodule.min.js", "utility/icons/icons.min.css"):
        assert f"socle/ui/static/dsfr/{asset}" in names
    assert any(n.startswith("socle/ui/static/dsfr/fonts/") for n in names)
    assert any(n.startswith("socle/ui/static/dsfr/icons/") for n in names)
    expected = _package_files()
    for kind in ("/templates/", "/migrations/", "/apps/panorama/data/", "/apps/feedback/taxonomy"):
        assert any(kind in name for name in expected), kind
    assert sorted(expected - names) == []
    assert not [n for n in names if "node_modules" in n or "__pycache__" in n]


@pytest.mark.slow
def test_the_wheel_installs_offline_and_its_command_runs(wheelhouse: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "pip", "install", "--quiet", "--no-index", "--find-links", wheelhouse, "socle-ia",
        env=clean_env())
    result = run(venv / "bin" / "socle", "--help", env=clean_env(), cwd=tmp_path)
    assert "serve" in result.stdout and "worker" in result.stdout
    found = subprocess.run([venv / "bin" / "python", "-c", "import socle.ui.web as w; print(w.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert str(venv) in found  # the installed copy, not this checkout
