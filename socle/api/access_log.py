"""The access log never holds a secret sent in a query string (``?api_key=``, an OpenID Connect ``code``...):
its value is masked in uvicorn's log record, before any handler formats or ships it."""
from __future__ import annotations

import logging
from urllib.parse import unquote_plus

# Lowercase names of the query parameters whose value is a secret, whatever the route.
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


def install() -> None:
    """On uvicorn's access logger, once per process."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(existing, RedactSecrets) for existing in logger.filters):
        logger.addFilter(RedactSecrets())
