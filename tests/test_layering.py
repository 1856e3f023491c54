"""The layering of DESIGN.md: the platform's services never import the HTTP faces (``socle.api``, ``socle.ui``),
not even inside a function. What a service shares with the API (the error rule of :mod:`socle.errors`) lives
below it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import socle

ROOT = Path(socle.__file__).parent
SERVICES = ("audit", "batches", "chat", "compliance", "db", "files", "finetuning", "identity", "inference", "jobs",
            "quotas", "rag", "responses", "usage")
FACES = ("socle.api", "socle.ui")


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("package", SERVICES)
def test_a_service_never_imports_a_face(package: str) -> None:
    wrong = [f"{path.relative_to(ROOT.parent)}:{line}: {name}"
             for path in sorted((ROOT / package).rglob("*.py")) for line, name in _imports(path)
             if any(name == face or name.startswith(face + ".") for face in FACES)]
    assert not wrong, "a service imports the HTTP layer:\n" + "\n".join(wrong)


def test_the_batches_runner_records_errors_by_the_one_rule() -> None:
    """The batch output file and the API answer a refusal alike: the same status and envelope."""
    from socle.api import errors as api_errors
    from socle.batches import runner
    from socle.errors import Conflict, UpstreamRejected, error_payload, status_of

    assert runner.status_of is status_of is api_errors.status_of
    assert runner.error_payload is error_payload is api_errors.error_payload
    assert status_of(Conflict("x", code="file_in_use")) == 409
    assert status_of(UpstreamRejected("x", status=422)) == 422
    assert error_payload(Conflict("non", param="file_id", code="file_in_use")) == {
        "error": {"message": "non", "type": "invalid_request_error", "param": "file_id", "code": "file_in_use"}}
