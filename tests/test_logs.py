"""Log lines: ISO 8601 UTC timestamps and the request id in both formats, JSON that a collector parses, static
assets out of the access log, no secret of a query string; the request id middleware."""
from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from socle import logs
from socle.api import docs

ISO_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def _record(name: str, message: str, *args: object, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord(name, logging.WARNING, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_text_lines_carry_a_utc_timestamp_and_the_request_id() -> None:
    token = logs.request_id.set("abc-123")
    try:
        line = logs.TextFormatter().format(_record("socle.jobs", "job %d failed", 7))
    finally:
        logs.request_id.reset(token)
    assert re.fullmatch(rf"{ISO_UTC} WARNING socle\.jobs \[abc-123\] job 7 failed", line), line
    assert re.fullmatch(rf"{ISO_UTC} WARNING socle \[-\] outside", logs.TextFormatter().format(_record("socle", "outside")))


def test_json_lines_are_one_object_each_with_the_extra_fields() -> None:
    token = logs.request_id.set("req-9")
    try:
        record = _record("socle.backends", "backend %s failed", "gpu-1", event="backend_failed", backend="gpu-1")
        entry = json.loads(logs.JsonFormatter().format(record))
    finally:
        logs.request_id.reset(token)
    assert re.fullmatch(ISO_UTC, entry["timestamp"])
    assert entry | {"timestamp": None} == {"timestamp": None, "level": "WARNING", "logger": "socle.backends",
                                           "message": "backend gpu-1 failed", "request_id": "req-9",
                                           "event": "backend_failed", "backend": "gpu-1"}
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord("socle", logging.ERROR, __file__, 1, "it\nfailed", None, sys.exc_info())
    entry = json.loads(logs.JsonFormatter().format(failed))
    assert entry["message"] == "it\nfailed" and "ValueError: boom" in entry["exception"]
    assert "request_id" not in entry  # none outside a request


def test_the_access_log_hides_secrets_and_static_assets_in_json() -> None:
    secret = "sk-socle-querysecret0123456789"
    access = _record("uvicorn.access", '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET",
                     f"/v1/models?api_key={secret}&limit=7", "1.1", 401)
    assert logs.RedactSecrets().filter(access) and logs.SkipStatic().filter(access)
    entry = json.loads(logs.JsonFormatter().format(access))
    assert secret not in json.dumps(entry)
    assert entry["path"] == "/v1/models?api_key=[redacted]&limit=7" and entry["status"] == 401
    assert entry["method"] == "GET" and entry["client"] == "127.0.0.1:5000"
    for path in ("/ui/static/socle.css", "/ui/static/dsfr/favicon/favicon.ico", "/favicon.ico",
                 f"{docs.ASSETS_PATH}/swagger-ui.css"):
        record = _record("uvicorn.access", '%s - "%s %s HTTP/%s" %d', "c", "GET", path, "1.1", 200)
        assert not logs.SkipStatic().filter(record), path
        assert logs.SkipStatic(keep=True).filter(record), path
    page = _record("uvicorn.access", '%s - "%s %s HTTP/%s" %d', "c", "GET", "/ui/chat", "1.1", 200)
    assert logs.SkipStatic().filter(page)


@pytest.mark.parametrize("kind", ["text", "json"])
def test_the_configuration_uvicorn_applies(kind: str) -> None:
    """What ``socle serve`` hands uvicorn, applied in a process of its own: uvicorn's loggers and the
    platform's go through one handler, in one format."""
    script = textwrap.dedent(f"""
        import logging, logging.config
        from socle import logs
        logging.config.dictConfig(logs.config(kind={kind!r}, level="info"))
        logs.configure(kind={kind!r}, level="info")  # what the app does again: nothing doubles
        access = logging.getLogger("uvicorn.access")
        line = '%s - "%s %s HTTP/%s" %d'
        access.info(line, "127.0.0.1:1", "GET", "/ui/static/socle.css", "1.1", 200)
        access.info(line, "127.0.0.1:1", "GET", "/v1/models?password=hunter2", "1.1", 401)
        logs.request_id.set("rid-1")
        logging.getLogger("uvicorn.error").info("Started server process")
        logging.getLogger("socle.jobs").warning("job %d failed", 3)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    lines = result.stderr.splitlines()
    assert len(lines) == 3, result.stderr
    assert "socle.css" not in result.stderr and "hunter2" not in result.stderr
    if kind == "json":
        entries = [json.loads(line) for line in lines]
        assert [e["logger"] for e in entries] == ["uvicorn.access", "uvicorn.error", "socle.jobs"]
        assert entries[0]["path"] == "/v1/models?password=[redacted]" and "request_id" not in entries[0]
        assert entries[2]["request_id"] == "rid-1" and entries[2]["message"] == "job 3 failed"
        assert all(re.fullmatch(ISO_UTC, e["timestamp"]) for e in entries)
    else:
        assert re.fullmatch(rf'{ISO_UTC} INFO uvicorn\.access \[-\] 127\.0\.0\.1:1 - "GET '
                            r'/v1/models\?password=\[redacted\] HTTP/1\.1" 401', lines[0]), lines[0]
        assert re.fullmatch(rf"{ISO_UTC} WARNING socle\.jobs \[rid-1\] job 3 failed", lines[2]), lines[2]


@pytest.mark.parametrize(("given", "kept"), [
    ("abc-123", True), ("trace.1:span_2-x", True), ("a" * 128, True), ("a" * 129, False), ("", False),
    ("two words", False), ("new\nline", False), ("é", False), ("a/b", False)])
def test_a_client_request_id_is_kept_only_when_sane(given: str, kept: bool) -> None:
    assert (logs.sane(given) == given) is kept


async def test_the_middleware_sets_and_returns_the_id() -> None:
    seen: list[str | None] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(logs.request_id.get())
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def call(headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await logs.RequestId(app)({"type": "http", "headers": headers}, None, send)  # type: ignore[arg-type]
        return sent

    sent = await call([(b"x-request-id", b"abc-123")])
    assert sent[0]["headers"] == [(b"content-type", b"text/plain"), (b"x-request-id", b"abc-123")]
    assert seen[-1] == "abc-123"
    sent = await call([(b"x-request-id", b"not sane!")])
    made = dict(sent[0]["headers"])[b"x-request-id"].decode()
    assert re.fullmatch(r"[0-9a-f]{32}", made) and seen[-1] == made
    sent = await call([])
    assert re.fullmatch(r"[0-9a-f]{32}", dict(sent[0]["headers"])[b"x-request-id"].decode())
    assert logs.request_id.get() is None  # nothing left behind once the request is over
