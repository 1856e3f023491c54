"""Domain errors, raised by services and adapters, mapped to HTTP by ``socle.api.errors`` alone.

Each carries what the OpenAI error envelope needs (type, code, param) so the SDK raises its usual
exception; no module below the HTTP layer knows about status codes.
"""
from __future__ import annotations


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
