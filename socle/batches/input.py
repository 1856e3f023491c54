"""A batch's input file, checked before anything runs, as OpenAI checks it: every line a JSON object with
``custom_id`` (unique), ``method`` POST, ``url`` the batch's endpoint and ``body`` an object naming a ``model``.
Problems are reported by line number (from 1), the first :data:`MAX_ERRORS` of them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from socle.endpoints import Endpoint, Json

MAX_ERRORS = 100
ENDPOINTS: dict[str, Endpoint] = {"/v1/chat/completions": Endpoint.CHAT, "/v1/completions": Endpoint.COMPLETIONS,
                                  "/v1/embeddings": Endpoint.EMBEDDINGS, "/v1/rerank": Endpoint.RERANK}


@dataclass(frozen=True, slots=True)
class Request:
    line: int  # from 1, as the errors name it
    custom_id: str
    body: Json


@dataclass(frozen=True, slots=True)
class LineError:
    line: int | None
    code: str
    message: str
    param: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "param": self.param, "line": self.line}


def parse(content: bytes, endpoint: str, *, max_requests: int) -> tuple[list[Request], list[LineError]]:
    """The requests of the file, or the problems that stop the batch from running (then the requests are not
    all there)."""
    requests: list[Request] = []
    errors: list[LineError] = []
    seen: set[str] = set()
    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        request, error = _line(number, raw, endpoint)
        if error is None and request is not None:
            if request.custom_id in seen:
                error = LineError(number, "duplicate_custom_id",
                                  f"The custom_id '{request.custom_id}' is used by an earlier line.", "custom_id")
            else:
                seen.add(request.custom_id)
                requests.append(request)
        if error is not None:
            errors.append(error)
            if len(errors) >= MAX_ERRORS:
                break
    if not errors and not requests:
        errors.append(LineError(None, "empty_file", "The input file holds no request."))
    if len(requests) > max_requests:
        errors.append(LineError(None, "too_many_requests",
                                f"The input file holds {len(requests)} requests; a batch takes {max_requests} at most."))
    return requests, errors


def _line(number: int, raw: bytes, endpoint: str) -> tuple[Request | None, LineError | None]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, LineError(number, "invalid_json_line", "This line is not valid JSON.")
    if not isinstance(value, dict):
        return None, LineError(number, "invalid_request", "A line must be a JSON object.")
    custom_id = value.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return None, LineError(number, "missing_required_parameter", "Each line needs a 'custom_id' (a string).",
                               "custom_id")
    if value.get("method") != "POST":
        return None, LineError(number, "invalid_method", "The 'method' must be 'POST'.", "method")
    if value.get("url") != endpoint:
        return None, LineError(number, "mismatched_url",
                               f"The 'url' {value.get('url')!r} is not the batch's endpoint '{endpoint}'.", "url")
    body = value.get("body")
    if not isinstance(body, dict):
        return None, LineError(number, "missing_required_parameter", "Each line needs a 'body' (a JSON object).",
                               "body")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return None, LineError(number, "missing_required_parameter", "The 'body' needs a 'model'.", "body.model")
    if body.get("stream"):
        return None, LineError(number, "invalid_value", "A batch's requests cannot be streamed.", "body.stream")
    unknown = set(value) - {"custom_id", "method", "url", "body"}
    if unknown:
        return None, LineError(number, "invalid_request", f"Unknown field(s): {', '.join(sorted(unknown))}.")
    return Request(number, custom_id, body), None
