"""Domain errors answered over HTTP: OpenAI's error envelope with the status of the one rule
(:func:`socle.errors.status_of`, kept beside the errors so that a batch's result files share it)."""
from __future__ import annotations

import logging
import math
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from socle.api.strict import UnreadableInput
from socle.errors import RateLimited, SocleError
from socle.errors import envelope as envelope  # the routers' and the web UI's names
from socle.errors import error_payload as error_payload
from socle.errors import status_of as status_of

log = logging.getLogger("socle.api")


def error_response(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers)


def socle_error_response(exc: SocleError) -> Response:
    """A domain error's answer: its status, its envelope, and the headers its kind calls for."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.kind == "unauthenticated" else None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_s))), **exc.headers}
    return error_response(status_of(exc), error_payload(exc), headers)


async def _socle_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, SocleError)
    return socle_error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, envelope("The request body is not valid JSON.", "invalid_request_error",
                                            code="invalid_json"))
    first = errors[0] if errors else {}
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    param = ".".join(location) or None
    message = f"{param}: {first.get('msg')}" if param else str(first.get("msg", "Invalid request."))
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return error_response(422, envelope(message, "invalid_request_error", param=param, code="invalid_value"))


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(exc.status_code)
    return error_response(exc.status_code, envelope(str(exc.detail), "invalid_request_error", code=code),
                          exc.headers)


async def _unreadable_input(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, UnreadableInput)
    return error_response(exc.status_code, envelope(str(exc.detail), "invalid_request_error", param=exc.param,
                                                    code=exc.code))


async def unexpected_error(_: Request | None, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, envelope("Internal server error.", "server_error", code="internal_error"))


HANDLERS = {SocleError: _socle_error, RequestValidationError: _validation_error,
            StarletteHTTPException: _http_error, UnreadableInput: _unreadable_input, Exception: unexpected_error}


def install(app: FastAPI) -> None:
    for exception, handler in HANDLERS.items():
        app.add_exception_handler(exception, handler)
