"""``socle panorama`` at the console: the sample catalogue imported, a file merged into it, the catalogue
exported as CSV and YAML that import back unchanged, and the search-by-need evaluation printed."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from pathlib import Path

import yaml

from tests.support.servers import SOCLE

MODELS = "models:\n  - {id: multilingual-e5-small, type: embeddings, backends: [{type: e5}]}\n"


def _socle(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "models.yaml").write_text(MODELS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCLE_")}
    env.update({"SOCLE_DATA_DIR": str(tmp_path / "data"), "SOCLE_CONFIG": str(tmp_path / "models.yaml"),
                "SOCLE_LOG_LEVEL": "warning", "COLUMNS": "200"})
    return subprocess.run([str(SOCLE), "panorama", *args], env=env, capture_output=True, text=True, timeout=900)


def test_import_export_round_trip_and_eval(tmp_path: Path) -> None:
    sample = _socle(tmp_path, "import", "--sample")
    assert sample.returncode == 0, sample.stderr
    assert "45 added, 0 updated" in sample.stdout
    assert "0 added, 0 updated" in _socle(tmp_path, "import", "--sample").stdout  # merged by slug: nothing new
    assert _socle(tmp_path, "import").returncode != 0  # a file or --sample

    mine = tmp_path / "mine.csv"
    mine.write_text("Nom;Famille;Éditeur;Description;Maturité;Hébergement\n"
                    "Robot Courrier;Relation usager et agents conversationnels;Éditeur C;Trie le courrier.;pilote;ue\n",
                    encoding="cp1252")
    merged = _socle(tmp_path, "import", str(mine))
    assert merged.returncode == 0 and "1 added" in merged.stdout, merged.stdout + merged.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("solutions:\n  - {name: X, family: astrologie, editor: E, description: D}\n")
    refused = _socle(tmp_path, "import", str(broken))
    assert refused.returncode == 1 and "family" in refused.stderr

    exported = _socle(tmp_path, "export")
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout), delimiter=";"))
    assert len(rows) == 48  # the sample, the file's one, and the platform's two apps
    assert next(r for r in rows if r["slug"] == "robot-courrier")["family"] == "relation_usager"
    out = tmp_path / "catalogue.yaml"
    assert _socle(tmp_path, "export", "--format", "yaml", "-o", str(out)).returncode == 0
    assert len(yaml.safe_load(out.read_text())["solutions"]) == 48
    assert "0 added, 0 updated" in _socle(tmp_path, "import", str(out)).stdout  # what export writes reads back

    evaluation = _socle(tmp_path, "eval", "--json")
    assert evaluation.returncode == 0, evaluation.stderr
    result = json.loads(evaluation.stdout)
    assert result["needs"] >= 30 and result["top3"] >= 0.8
    table = _socle(tmp_path, "eval")
    assert "top-3" in table.stdout and "Traduction" in table.stdout
