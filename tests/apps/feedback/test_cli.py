"""``socle feedback`` at the console: import, a dry run, an analysis killed with SIGKILL that resumes
where it stopped (no finished message redone), the files it writes, and the evaluation table."""
from __future__ import annotations

import csv
import io
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from tests.apps.feedback.support import MESSAGES, messages
from tests.support.servers import SOCLE


def _env(data_dir: Path, catalogue: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCLE_")}
    return {**env, "SOCLE_DATA_DIR": str(data_dir), "SOCLE_CONFIG": str(catalogue), "SOCLE_JOB_LEASE_S": "2",
            "SOCLE_LOG_LEVEL": "warning", "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}


def _socle(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SOCLE), "feedback", *args], env=env, capture_output=True, text=True, timeout=timeout)


def _annotations(db: Path) -> list[tuple[int, int, str]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        return connection.execute("SELECT id, message_id, created_at FROM feedback_annotations ORDER BY id").fetchall()


def test_import_dry_run_killed_analysis_resumes_then_eval(tmp_path: Path, catalogue: Path) -> None:
    env, total = _env(tmp_path / "data", catalogue), len(messages())
    imported = _socle(env, "import", str(MESSAGES), "--dataset", "avis")
    assert imported.returncode == 0, imported.stderr
    assert f"{total} messages added" in imported.stdout and f"{total} with labels" in imported.stdout
    again = _socle(env, "import", str(MESSAGES), "--dataset", "avis")
    assert f"0 messages added, {total} already there" in again.stdout

    dry = _socle(env, "analyze", "--dataset", "avis", "--dry-run")
    assert dry.returncode == 0 and f"Dry run: {total} messages" in dry.stdout, dry.stdout + dry.stderr

    out = tmp_path / "out"
    db = tmp_path / "data" / "socle.db"
    first = subprocess.Popen([str(SOCLE), "feedback", "analyze", "--dataset", "avis", "--out", str(out)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while len(_annotations(db)) < 64:  # two batches committed
        assert first.poll() is None, first.stdout.read().decode() if first.stdout else ""
        assert time.monotonic() < deadline
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = _annotations(db)
    assert 64 <= len(before) < total

    resumed = _socle(env, "analyze", "--dataset", "avis", "--out", str(out))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Resuming analysis #1" in resumed.stdout and "done" in resumed.stdout
    after = _annotations(db)
    assert len(after) == total and len({m for _, m, _ in after}) == total
    assert after[: len(before)] == before  # finished messages were kept as they were, not redone

    rows = list(csv.DictReader(io.StringIO((out / "annotations.csv").read_text(encoding="utf-8-sig")),
                               delimiter=";"))
    assert len(rows) == total
    report = (out / "report.html").read_text(encoding="utf-8")
    assert report.count("<svg") >= 3 and "multilingual-e5-small" in report

    scores = _socle(env, "eval", "--dataset", "avis")
    assert scores.returncode == 0, scores.stderr
    assert "precision" in scores.stdout and "macro" in scores.stdout and "urgent" in scores.stdout
