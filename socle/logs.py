"""One log format for every process (API workers, job workers, uvicorn's own loggers): plain text or one JSON
object per line (``SOCLE_LOG_FORMAT``), ISO 8601 UTC timestamps, and the id of the request (or of the request
that enqueued the running job) on every record.

The request id lives in a context variable: the ASGI middleware :class:`RequestId` sets it for each request,
the job workers for each job, and :class:`RequestIdFilter` copies it onto the records. The access log keeps
static assets out unless ``SOCLE_LOG_STATIC`` is set, and never shows a secret of a query string
(:class:`RedactSecrets`).
"""
from __future__ import annotations

import json
import logging
import os
import re
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote_plus

request_id: ContextVar[str | None] = ContextVar("socle_request_id", default=None)

HEADER = "X-Request-Id"
_HEADER_KEY = HEADER.lower().encode()
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Paths of static assets: the web UI's and the apps' (all under /ui/static/), the API documentation's
# (socle.api.docs.ASSETS_PATH) and the browser's icon.
STATIC_PREFIXES = ("/ui/static/", "/docs-assets/", "/static/", "/favicon.ico")
# Attributes every LogRecord has: anything else on a record was passed with ``extra=`` and goes into JSON.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime",
                                                                                 "request_id", "taskName"}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# Lowercase names of the query parameters whose value is a secret, whatever the route: masked in the access log
# (``?api_key=``, an OpenID Connect ``code``...) before any handler formats or ships the record.
SECRET_PARAMETERS = frozenset({"api_key", "api-key", "apikey", "key", "access_token", "id_token",
                               "refresh_token", "token", "code", "state", "password", "secret", "client_secret"})
MASK = "[redacted]"


def redact(target: str) -> str:
    """``target`` (a path and its query string) with the values of secret parameters masked."""
    path, mark, query = target.partition("?")
    if not mark:
        return target
    pairs = []
    for pair in query.split("&"):
        name, equals, _ = pair.partition("=")
        secret = unquote_plus(name).strip().lower() in SECRET_PARAMETERS
        pairs.append(f"{name}={MASK}" if secret and equals else pair)
    return f"{path}?{'&'.join(pairs)}"


class RedactSecrets(logging.Filter):
    """Masks the request target of uvicorn's access records: ``(client, method, target, version, status)``."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], redact(args[2]), *args[3:])
        return True


def sane(value: str | None) -> str | None:
    """A client's request id, if it is one we can log and echo as is (no spaces, no control characters)."""
    return value if value is not None and _SANE.fullmatch(value) else None


_IDS_PER_DRAW = 256
_ids: deque[str] = deque()  # drawn ahead; deque.pop is atomic, for the job threads' ids too
os.register_at_fork(after_in_child=_ids.clear)  # a forked worker never repeats its parent's ids


def new_id() -> str:
    """128 random bits in hex, as a uuid4 without its fixed bits: drawn from the system 256 at a time, as
    one system call per id cost more than the rest of the request id's work."""
    try:
        return _ids.pop()
    except IndexError:
        block = os.urandom(16 * _IDS_PER_DRAW).hex()
        _ids.extend(block[start:start + 32] for start in range(32, len(block), 32))
        return block[:32]


class RequestId:
    """Pure ASGI middleware (no per-request objects beyond the id): takes the client's ``X-Request-Id`` when it
    is sane, else makes one, sets it for the request's logs and usage row, and returns it on every response,
    errors and streams included. Wraps the whole app, so even the 500 of an unhandled error carries it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope["headers"]:
            if name == _HEADER_KEY:
                given = sane(value.decode("latin-1"))
                break
        rid = given or new_id()
        header = (_HEADER_KEY, rid.encode())
        token = request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)
        # Not on an error: the server's own line about it ("Exception in ASGI application") keeps the id. Each
        # request has its own task under uvicorn; this is for servers that run it in the caller's (tests).
        request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Puts the current request id (or ``-``) on every record, as ``record.request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get() or "-"
        return True


class SkipStatic(logging.Filter):
    """Leaves static assets out of uvicorn's access log: ``(client, method, target, version, status)``."""

    def __init__(self, keep: bool = False) -> None:
        super().__init__()
        self.keep = keep

    def filter(self, record: logging.LogRecord) -> bool:
        if self.keep:
            return True
        args = record.args
        return not (isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str)
                    and args[2].startswith(STATIC_PREFIXES))


def _timestamp(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """``2026-12-03T11:39:31.123Z INFO socle.jobs [request id] message``"""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return _timestamp(record.created)

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get() or "-"
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``timestamp``, ``level``, ``logger``, ``message``, ``request_id``, what was
    passed with ``extra=``, the exception if any; an access record also gets its fields one by one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"timestamp": _timestamp(record.created), "level": record.levelname,
                                 "logger": record.name, "message": record.getMessage()}
        rid = getattr(record, "request_id", None) or request_id.get()
        if rid and rid != "-":
            entry["request_id"] = rid
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            entry.update(client=args[0], method=args[1], path=args[2], http_version=args[3], status=args[4])
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_") and name not in entry:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


def formatter(kind: Literal["text", "json"] = "text") -> logging.Formatter:
    return JsonFormatter() if kind == "json" else TextFormatter()


def config(*, kind: Literal["text", "json"] = "text", level: str = "info", static: bool = False) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` configuration: one stderr handler on the root logger that every
    logger, uvicorn's included, propagates to. ``socle serve`` hands it to uvicorn as ``log_config`` (each
    worker process applies it before it builds the app)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"static": {"()": "socle.logs.SkipStatic", "keep": static},
                    "redact": {"()": "socle.logs.RedactSecrets"}},
        "handlers": {"socle": {"()": "socle.logs.Handler", "kind": kind}},
        "loggers": {"uvicorn": {"handlers": [], "level": level.upper(), "propagate": True},
                    "uvicorn.error": {"handlers": [], "level": level.upper(), "propagate": True},
                    "uvicorn.access": {"handlers": [], "level": level.upper(), "propagate": True,
                                       "filters": ["redact", "static"]}},
        "root": {"handlers": ["socle"], "level": level.upper()},
    }


class Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The platform's handler (stderr), recognisable so that it is installed once per process."""

    def __init__(self, kind: Literal["text", "json"] = "text") -> None:
        super().__init__()
        self.setFormatter(formatter(kind))
        self.addFilter(RequestIdFilter())


def configure(*, kind: Literal["text", "json"] = "text", level: str = "info", static: bool = False) -> None:
    """Set this process's logging up, idempotently: uvicorn may have applied :func:`config` already, and a
    process may build several apps. A root logger that already has handlers of another kind (a test runner's)
    keeps them, as :func:`logging.basicConfig` would."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(Handler(kind))
    root.setLevel(level.upper())
    access = logging.getLogger("uvicorn.access")
    skips = [existing for existing in access.filters if isinstance(existing, SkipStatic)]
    for existing in skips:
        existing.keep = static
    if not skips:
        access.addFilter(SkipStatic(static))
    if not any(isinstance(existing, RedactSecrets) for existing in access.filters):
        access.addFilter(RedactSecrets())
