"""API key format: ``sk-socle-`` + 12-hex public id + ``_`` + 256-bit url-safe secret.

The public id finds the row; only the SHA-256 of the secret is stored and compared in constant time.
A plain (unsalted) SHA-256 is the right tool here: the secret has 256 bits of entropy, so neither a
dictionary nor a precomputed table helps, and a slow hash would cost every request.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "sk-socle-"
PUBLIC_ID_LENGTH = 12
_SECRET_BYTES = 32
MIN_SECRET_LENGTH = 32  # a key given by the operator (SOCLE_ADMIN_API_KEY): 190 bits at least, url-safe
_GIVEN = re.compile(rf"{re.escape(PREFIX)}[0-9a-f]{{{PUBLIC_ID_LENGTH}}}_[A-Za-z0-9_-]{{{MIN_SECRET_LENGTH},150}}")


@dataclass(frozen=True, slots=True)
class ParsedKey:
    public_id: str
    secret: str


def new_key() -> tuple[str, str, str]:
    """A fresh key: (the full key to hand out once, its public id, the hash of its secret)."""
    public_id = secrets.token_hex(PUBLIC_ID_LENGTH // 2)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    return f"{PREFIX}{public_id}_{secret}", public_id, hash_secret(secret)


def well_formed(token: str) -> bool:
    """Whether a key made outside the platform has the form and the strength of the platform's own."""
    return _GIVEN.fullmatch(token) is not None


def adopt(token: str) -> tuple[str, str, str]:
    """A key made outside the platform (the first admin's, from a secret), as :func:`new_key` returns one."""
    if not well_formed(token):
        raise ValueError("not a well-formed key")
    parsed = parse(token)
    assert parsed is not None
    return token, parsed.public_id, hash_secret(parsed.secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse(token: str) -> ParsedKey | None:
    """Split a presented key, or None when it cannot be one of ours."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    body = token[len(PREFIX):]
    public_id, sep, secret = body[:PUBLIC_ID_LENGTH], body[PUBLIC_ID_LENGTH:PUBLIC_ID_LENGTH + 1], body[
        PUBLIC_ID_LENGTH + 1:]
    if sep != "_" or not secret:
        return None
    return ParsedKey(public_id, secret)


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
