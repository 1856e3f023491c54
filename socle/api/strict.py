"""One rule for the text and numbers every request carries, applied where requests are read: the route
class of every router, in the API and in the web UI.

Text may hold neither a NUL character (PostgreSQL cannot store one, and no name, message or filename needs
it) nor a lone UTF-16 surrogate (JSON's ``"\\ud800"``: no UTF-8 encodes it, so it could be neither stored,
logged nor sent to a backend). Either is refused with a 400 that names the parameter, whatever the store:
in JSON bodies (values and keys), form fields, uploaded files' names, query strings and paths. A JSON
integer must fit in 64 bits, as the stores and the JSON encoder that talks to backends need (fields that a
gateway passes through to a backend unchecked included).
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

_FORBIDDEN = re.compile("[\x00\ud800-\udfff]")
# In a JSON text, where a forbidden character may hide: itself (a raw surrogate, which the decoder lets
# through), or an escape that decodes to one; and integers of 19 digits or more. A match only means "look closer":
# "\\ud83d\\ude00" is a valid pair.
_SUSPECT = re.compile(r"[\ud800-\udfff]|\\u(?:0000|[dD][89a-fA-F])|\d{19}")
# The same look in the raw UTF-8 body: a raw surrogate is encoded as ED A0..BF; anything but UTF-8 too.
_SUSPECT_BYTES = re.compile(rb"\xed[\xa0-\xbf]|\\u(?:0000|[dD][89a-fA-F])|\d{19}")
_INTEGERS = range(-(2**63), 2**64)  # signed or unsigned 64-bit


# (message, status, code): an integer out of range is a value out of range, as the schemas' bounds say.
_TEXT = ("holds a NUL character or a lone UTF-16 surrogate, which text may not hold.", 400, "invalid_text")
_NUMBER = ("is an integer beyond 64 bits.", 422, "invalid_value")


class UnreadableInput(HTTPException):
    """Text with a forbidden character, or an integer too large. An ``HTTPException``, so that FastAPI's
    reading of a body lets it through as it is (it turns any other error there into a bare 400)."""

    def __init__(self, param: str, problem: tuple[str, int, str] = _TEXT) -> None:
        message, status, self.code = problem
        super().__init__(status, f"{param} {message}")
        self.param = param


def _name(key: object) -> str:
    """A key as it may be shown: forbidden characters escaped."""
    text = str(key)
    return ascii(text)[1:-1] if _FORBIDDEN.search(text) else text


def _check_json(value: Any, path: str = "") -> None:
    """Refuse the first forbidden character or integer of a decoded JSON value, naming where it is
    (``messages.0.content``)."""
    if isinstance(value, str):
        if _FORBIDDEN.search(value):
            raise UnreadableInput(path or "body")
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if value not in _INTEGERS:
            raise UnreadableInput(path or "body", _NUMBER)
    elif isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{_name(key)}" if path else _name(key)
            if _FORBIDDEN.search(key):
                raise UnreadableInput(here)
            _check_json(item, here)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, f"{path}.{index}" if path else str(index))


def check_fields(fields: Any) -> None:
    """Refuse form fields (or query parameters) with a forbidden character in a name, a value or a file's
    name."""
    for name, value in fields:
        text = value if isinstance(value, str) else getattr(value, "filename", None) or ""
        if _FORBIDDEN.search(name) or _FORBIDDEN.search(text):
            raise UnreadableInput(_name(name))


def plainly_readable(body: bytes) -> bool:
    """Whether a JSON body needs no closer look: UTF-8 without anything the rule could refuse, so that orjson
    may decode it as it is (every ordinary request)."""
    return json.detect_encoding(body) == "utf-8" and not _SUSPECT_BYTES.search(body)


class StrictRequest(Request):
    """A request whose JSON body and form are checked as they are decoded (once each)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            if plainly_readable(body):
                self._json = orjson.loads(body)  # nothing to look at closer: the fast path of every request
                return self._json
            text = body.decode(json.detect_encoding(body), "surrogatepass")  # as json.loads decodes bytes
            value = json.loads(text)
            if _SUSPECT.search(text):
                _check_json(value)
            self._json = value
        return self._json

    async def _get_form(self, **limits: Any) -> FormData:
        form = await super()._get_form(**limits)
        check_fields(form.multi_items())
        return form


class StrictRoute(APIRoute):
    """The route class of every router: its requests are :class:`StrictRequest`, and the text of their
    path and query string is checked before anything else reads it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def strict(request: Request) -> Response:
            check_fields(request.path_params.items())
            if request.scope.get("query_string"):
                check_fields(request.query_params.multi_items())
            return await handle(StrictRequest(request.scope, request.receive))

        return strict
