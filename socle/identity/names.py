"""Identifiers that people read — e-mail addresses, group and collection names — in one canonical form, and
never a look-alike of another one.

- Everything is NFKC-normalised: an accent is one composed letter however it was typed (the NFD ``é`` of a Mac
  and the NFC one of a PC are the same address), and compatibility forms are folded (full-width ``ａｄｍｉｎ`` is
  ``admin``).
- An e-mail address is lowercased (the platform has always matched addresses without regard to case) and its
  domain goes through IDNA (UTS #46): ``ÉCOLE.fr``, ``école.fr`` and ``xn--cole-9oa.fr`` are one domain, kept
  in its readable form.
- A new address or name that mixes scripts with letters that look alike (a Cyrillic ``а`` among Latin letters)
  is refused: it could pass for another one. One script throughout (``пример@пример.рф``) is fine.

Lookups (sign-in, finding a user or a group) normalise what they are given the same way, so a look-alike typed
at sign-in finds the one account it folds to, and nothing else.
"""
from __future__ import annotations

import unicodedata

import idna
from confusable_homoglyphs import confusables

from socle.errors import InvalidRequest

_MAX_LOCAL_PART = 64  # RFC 5321


def canonical_email(raw: str) -> str:
    """The one form under which an address is stored and looked up. Something that is not an address comes
    back normalised as far as it goes (a lookup then finds nothing)."""
    text = unicodedata.normalize("NFKC", raw).strip()
    local, at, domain = text.rpartition("@")
    if not at:
        return text.lower()
    try:
        domain = idna.decode(idna.encode(domain, uts46=True))
    except (idna.IDNAError, UnicodeError):
        domain = domain.lower()
    return f"{local.lower()}@{domain}"


def new_email(raw: str) -> str:
    """The canonical form of an address given to a new account, or :class:`InvalidRequest` when it is not an
    address, or could pass for another one."""
    text = unicodedata.normalize("NFKC", raw).strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or len(local) > _MAX_LOCAL_PART or not local.isprintable() or " " in local:
        raise InvalidRequest("email must be an e-mail address.", param="email", code="invalid_email")
    try:
        idna.encode(domain, uts46=True)
    except (idna.IDNAError, UnicodeError) as exc:
        raise InvalidRequest(f"The domain of this e-mail address is not valid: {exc}", param="email",
                             code="invalid_email") from exc
    email = canonical_email(text)
    for part in (local, *email.rpartition("@")[2].split(".")):
        _not_confusable(part, "email", "This e-mail address")
    return email


def readable_name(raw: str, *, param: str = "name") -> str:
    """A group's or a collection's name as stored: NFKC, trimmed, and not a look-alike mixing scripts."""
    name = unicodedata.normalize("NFKC", raw).strip()
    if not name:
        raise InvalidRequest(f"{param} must not be empty.", param=param)
    _not_confusable(name, param, "This name")
    return name


def lookup_name(raw: str) -> str:
    """A name as looked up: the stored form of what was typed."""
    return unicodedata.normalize("NFKC", raw).strip()


def _not_confusable(text: str, param: str, what: str) -> None:
    if confusables.is_dangerous(text):
        raise InvalidRequest(f"{what} mixes alphabets with letters that look alike ({text!r}): it could pass "
                             "for another one. Write it in a single alphabet.", param=param, code="confusable")
