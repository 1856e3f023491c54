"""The SHA-256 of every model file the platform loads: recorded at its first load, checked at each one after.

A model file is more than data: its chat template runs at every call and its weights decide every answer.
A file that changed since it was recorded (replaced by mistake, or by someone who should not have) is
refused, and the platform does not start, until an administrator who meant the change records it again
(``socle models --record``). The manifest is a small JSON file of the data directory that an administrator
can read, diff and check at any time (``socle models --verify``).
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MANIFEST_NAME = "models.manifest.json"


class ModelFileChanged(Exception):
    """A model file's content is not the one recorded in the manifest."""


@dataclass(frozen=True, slots=True)
class FileCheck:
    """One model file: what the manifest says of it and what it is now."""

    path: Path
    sha256: str
    recorded: str | None  # None: not in the manifest yet

    @property
    def status(self) -> str:
        if self.recorded is None:
            return "new"
        return "ok" if self.recorded == self.sha256 else "changed"


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class ModelManifest:
    """``models.manifest.json``: ``{"files": {absolute path: {"sha256", "size", "recorded_at"}}}``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> "ModelManifest":
        return cls(data_dir / MANIFEST_NAME)

    def verify(self, files: Iterable[Path]) -> list[FileCheck]:
        """Each file's checksum now, beside the recorded one; writes nothing."""
        recorded = self._read()
        return [self._check(path, recorded) for path in _unique(files)]

    def admit(self, files: Iterable[Path]) -> list[FileCheck]:
        """Check the files before they are loaded: record those never seen, refuse any that changed."""
        with self._locked():
            entries = self._read()
            checks = [self._check(path, entries) for path in _unique(files)]
            changed = [check for check in checks if check.status == "changed"]
            if changed:
                raise ModelFileChanged(
                    "; ".join(f"The model file {c.path} has changed since it was recorded in {self.path} "
                              f"(SHA-256 {c.recorded}, now {c.sha256})" for c in changed)
                    + ". It is refused. If the change is intended, record it with `socle models --record`.")
            if any(check.status == "new" for check in checks):
                self._write(entries, checks)
        return checks

    def record(self, files: Iterable[Path]) -> list[FileCheck]:
        """Record the files as they are now, accepting any change (an administrator replaced them)."""
        with self._locked():
            entries = self._read()
            checks = [self._check(path, entries) for path in _unique(files)]
            self._write(entries, checks)
        return checks

    def _check(self, path: Path, entries: dict[str, dict[str, object]]) -> FileCheck:
        entry = entries.get(str(path))
        return FileCheck(path, sha256_of(path), str(entry["sha256"]) if entry else None)

    def _read(self) -> dict[str, dict[str, object]]:
        try:
            content = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (ValueError, OSError) as exc:
            raise ModelFileChanged(f"The models manifest {self.path} cannot be read ({exc}): restore it, or "
                                   "delete it to record every model file anew.") from exc
        files = content.get("files") if isinstance(content, dict) else None
        if not isinstance(files, dict):
            raise ModelFileChanged(f"The models manifest {self.path} has no 'files' mapping: restore it, or "
                                   "delete it to record every model file anew.")
        return files

    def _write(self, entries: dict[str, dict[str, object]], checks: list[FileCheck]) -> None:
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        for check in checks:
            if check.status != "ok":
                entries[str(check.path)] = {"sha256": check.sha256, "size": check.path.stat().st_size,
                                            "recorded_at": now}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        content = json.dumps({"files": entries}, indent=2, sort_keys=True) + "\n"
        temporary.write_text(content, encoding="utf-8")
        os.replace(temporary, self.path)  # readers see the old manifest or the new one, never half of one

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time: the worker processes of one server all load their models at start."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _unique(files: Iterable[Path]) -> list[Path]:
    """Absolute paths, each once (two backends may load the same file)."""
    return list(dict.fromkeys(Path(path).resolve() for path in files))
