"""Helpers for the tests of forms' protections."""
from __future__ import annotations


def forged(token: str) -> str:
    """A CSRF token that differs from ``token`` in its first character (always: even when that is an x)."""
    return ("y" if token.startswith("x") else "x") + token[1:]
