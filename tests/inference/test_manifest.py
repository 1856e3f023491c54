"""Model files' checksums: recorded at the first load; a changed file refused until an admin records it."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from socle.inference.manifest import ModelFileChanged, ModelManifest


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "models" / "model.gguf"
    path.parent.mkdir()
    path.write_bytes(b"GGUF" + bytes(range(256)) * 100)
    return path


def test_the_first_load_records_each_file_once(tmp_path: Path, model: Path) -> None:
    manifest = ModelManifest.in_data_dir(tmp_path / "data")
    checks = manifest.admit([model, model.parent / ".." / "models" / "model.gguf"])  # one file, two spellings
    assert [c.status for c in checks] == ["new"]
    entry = json.loads(manifest.path.read_text())["files"][str(model)]
    assert entry["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert entry["size"] == model.stat().st_size
    assert [c.status for c in manifest.admit([model])] == ["ok"]
    assert [c.status for c in manifest.verify([model])] == ["ok"]


def test_a_changed_file_is_refused_until_it_is_recorded_again(tmp_path: Path, model: Path) -> None:
    manifest = ModelManifest.in_data_dir(tmp_path)
    manifest.admit([model])
    recorded = manifest.path.read_text()
    content = bytearray(model.read_bytes())
    content[100] ^= 1  # one bit, same size
    model.write_bytes(content)
    with pytest.raises(ModelFileChanged) as error:
        manifest.admit([model])
    assert str(model) in str(error.value) and "socle models --record" in str(error.value)
    assert manifest.path.read_text() == recorded  # a refusal writes nothing
    assert [c.status for c in manifest.verify([model])] == ["changed"]
    manifest.record([model])
    assert [c.status for c in manifest.admit([model])] == ["ok"]


def test_a_damaged_manifest_is_refused_rather_than_rewritten(tmp_path: Path, model: Path) -> None:
    manifest = ModelManifest.in_data_dir(tmp_path)
    manifest.path.write_text("{not json")
    with pytest.raises(ModelFileChanged) as error:
        manifest.admit([model])
    assert "cannot be read" in str(error.value)
    assert manifest.path.read_text() == "{not json"
