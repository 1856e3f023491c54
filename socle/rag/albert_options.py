"""The Albert API's upload options, checked in one place: what the platform honours, and a clear refusal
(naming the parameter) for what it cannot do, so that no option is ever ignored silently.

Chunking: Albert cuts with LangChain's ``RecursiveCharacterTextSplitter``; the platform's chunker
(``socle.rag.chunking``) is recursive too, but cuts at boundaries of its own (paragraphs, lines, sentences,
clauses, words) within each section. So ``chunk_size``, ``chunk_overlap`` and ``chunk_min_size`` are honoured;
the default separators, no preset and plain (not regex) separators are what it does already and are accepted;
anything else is refused. Metadata: a JSON object of scalars, kept on the document and its chunks.
"""
from __future__ import annotations

import re
from typing import Any

import orjson

from socle.errors import InvalidRequest

RECURSIVE = "RecursiveCharacterTextSplitter"
ALBERT_SEPARATORS = ("\n\n", "\n", ". ", " ")
# Keys the platform writes into every chunk's metadata: a client's own may not shadow them.
RESERVED_KEYS = frozenset({"document_id", "collection_id", "document_name", "index", "title", "page"})
METADATA_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_METADATA_BYTES = 8192
MAX_METADATA_KEYS = 50
Scalar = str | int | float | bool | None
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def check_chunker(*, chunker: str | None, separators: list[str] | None, preset_separators: str | None,
                  is_separator_regex: bool | None, length_function: str | None) -> None:
    """Refuse the chunking options the platform cannot honour."""
    if chunker not in (None, "", RECURSIVE):
        raise InvalidRequest(f"chunker {chunker!r} is not offered: documents are cut by {RECURSIVE} (recursively, "
                             "at paragraphs, lines, sentences, then words, within each section). Leave chunker out, "
                             "or choose a larger chunk_size for longer chunks.", param="chunker")
    if separators and tuple(separators) != ALBERT_SEPARATORS:
        raise InvalidRequest("Custom separators are not offered: chunks are cut at paragraphs, lines, sentences, "
                             "clauses, then words. Leave separators out.", param="separators")
    if preset_separators:
        raise InvalidRequest("preset_separators (cutting source code by language) is not offered; leave it out.",
                             param="preset_separators")
    if is_separator_regex:
        raise InvalidRequest("Regular-expression separators are not offered; leave is_separator_regex out.",
                             param="is_separator_regex")
    if length_function not in (None, "", "len"):
        raise InvalidRequest("Chunk sizes are counted in characters: length_function must be 'len'.",
                             param="length_function")


def parse_metadata(text: str | None) -> dict[str, Scalar] | None:
    """A document's ``metadata`` form field (a JSON object of scalars), or None when absent or empty."""
    if text is None or not text.strip():
        return None
    if len(text.encode()) > MAX_METADATA_BYTES:
        raise InvalidRequest(f"metadata holds at most {MAX_METADATA_BYTES} bytes.", param="metadata")
    try:
        value: Any = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"metadata must be a JSON object, as text: {exc}.", param="metadata") from exc
    if not isinstance(value, dict):
        raise InvalidRequest("metadata must be a JSON object, e.g. '{\"source\": \"intranet\", \"year\": 2024}'.",
                             param="metadata")
    if len(value) > MAX_METADATA_KEYS:
        raise InvalidRequest(f"metadata holds at most {MAX_METADATA_KEYS} keys.", param="metadata")
    for key, item in value.items():
        check_key(key, "metadata")
        if not isinstance(item, str | int | float | bool) and item is not None:
            raise InvalidRequest(f"metadata.{key} must be a string, a number, true, false or null.",
                                 param=f"metadata.{key}")
        if isinstance(item, str) and _UNSTORABLE.search(item) or isinstance(item, int) and not -2**63 <= item < 2**63:
            raise InvalidRequest(f"metadata.{key} holds what no store keeps (a NUL character, a lone surrogate, "
                                 "or an integer beyond 64 bits).", param=f"metadata.{key}")
    return value or None


def check_key(key: str, param: str) -> None:
    if not METADATA_KEY.match(key):
        raise InvalidRequest(f"{param} keys are 1 to 64 letters, digits or _ . : - (not {key[:70]!r}).", param=param)
    if key in RESERVED_KEYS:
        raise InvalidRequest(f"{param}.{key} is set by the platform on every chunk; choose another key.",
                             param=f"{param}.{key}")
