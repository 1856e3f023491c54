"""Domain errors, raised by services and adapters, answered over HTTP by ``socle.api.errors``.

Each carries what the OpenAI error envelope needs (type, code, param) so the SDK raises its usual
exception. The one rule from an error to its status and envelope (:func:`status_of`, :func:`error_payload`)
lives here, beside the errors: the API and the web UI answer with it, and a batch's result files
(:mod:`socle.batches.runner`) record a failed request as the API would have answered it. Services raise
errors; they never pick a status themselves.
"""
from __future__ import annotations

from typing import Any


class SocleError(Exception):
    """Base class. ``kind`` picks the HTTP status in the API layer."""

    kind = "server_error"
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class InvalidRequest(SocleError):
    kind = "invalid_request"
    type = "invalid_request_error"


class Unauthenticated(SocleError):
    kind = "unauthenticated"
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(SocleError):
    kind = "permission_denied"
    type = "invalid_request_error"
    code = "insufficient_permissions"


class NotFound(SocleError):
    """Also what a caller gets for a resource it may not see: existence is not disclosed."""

    kind = "not_found"
    type = "invalid_request_error"


class Conflict(SocleError):
    kind = "conflict"
    type = "invalid_request_error"


class PayloadTooLarge(SocleError):
    kind = "too_large"
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(SocleError):
    """A quota refuses the call (429): a rate limit (``requests``/``tokens``) or a budget
    (``insufficient_quota``), with OpenAI's ``x-ratelimit-*`` headers when they apply."""

    kind = "rate_limited"
    type = "requests"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: float = 1.0, code: str | None = None,
                 error_type: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s
        self.headers = headers or {}
        if error_type is not None:
            self.type = error_type


class BackendError(SocleError):
    """The inference backend failed or answered something unusable (502)."""

    kind = "bad_gateway"
    type = "api_error"
    code = "backend_error"


class BackendTimeout(SocleError):
    kind = "gateway_timeout"
    type = "api_error"
    code = "backend_timeout"


class BackendUnavailable(SocleError):
    """No backend of the model can take the call now (503)."""

    kind = "unavailable"
    type = "api_error"
    code = "backend_unavailable"


class UpstreamRejected(SocleError):
    """The backend refused the request itself (its 4xx): passed on with the backend's status."""

    kind = "upstream_rejected"
    type = "invalid_request_error"

    def __init__(self, message: str, *, status: int, param: str | None = None, code: str | None = None):
        super().__init__(message, param=param, code=code)
        self.status = status


STATUS_BY_KIND = {
    "invalid_request": 400,
    "unauthenticated": 401,
    "permission_denied": 403,
    "not_found": 404,
    "conflict": 409,
    "too_large": 413,
    "rate_limited": 429,
    "server_error": 500,
    "bad_gateway": 502,
    "unavailable": 503,
    "gateway_timeout": 504,
}


def envelope(message: str, type_: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error envelope."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_payload(exc: SocleError) -> dict[str, Any]:
    return envelope(exc.message, exc.type, param=exc.param, code=exc.code)


def status_of(exc: SocleError) -> int:
    """The one rule from a domain error to an HTTP status, for the API, the web UI and a batch's result files
    alike: a backend's own refusal (its 4xx) keeps the backend's status, anything unknown is a 500."""
    if isinstance(exc, UpstreamRejected):
        return exc.status
    return STATUS_BY_KIND.get(exc.kind, 500)
