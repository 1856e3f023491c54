"""The feedback dataset of the repository, and what a test needs to drive an analysis over HTTP."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.servers import ROOT

DATASET = ROOT / "datasets" / "feedback"
MESSAGES = DATASET / "messages.jsonl"


def messages() -> list[dict[str, Any]]:
    return [json.loads(line) for line in MESSAGES.read_text(encoding="utf-8").splitlines() if line.strip()]


def planted(message: dict[str, Any]) -> list[str]:
    """Every planted identifier of a message, and each part of 3 letters or more of a planted name."""
    values = []
    for item in message.get("pii") or []:
        values.append(item["value"])
        if item["type"] == "name":
            values += [part for part in re.split(r"[\s\-]+", item["value"])
                       if len(part) >= 3 and part.rstrip(".") not in ("Mme", "Madame", "Monsieur", "Mlle", "Maître")]
    return values


def import_file(http: httpx.Client, name: str, path: Path, *, content: bytes | None = None) -> dict[str, Any]:
    answer = http.post("/feedback/datasets", data={"name": name},
                       files={"file": (path.name, content if content is not None else path.read_bytes())})
    assert answer.status_code == 201, answer.text
    return answer.json()


def wait_analysis(http: httpx.Client, analysis_id: int, timeout_s: float = 900) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        analysis = http.get(f"/feedback/analyses/{analysis_id}").json()
        if analysis["status"] not in ("queued", "running"):
            return analysis
        time.sleep(0.5)
    raise AssertionError(f"analysis {analysis_id} still running after {timeout_s} s: {analysis}")


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "\n".join(json.dumps(row, ensure_ascii=False) for row in rows).encode()
