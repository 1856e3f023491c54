"""Secrets kept in the database (the backend keys entered in the browser), encrypted with Fernet under keys from
the environment (``SOCLE_ENCRYPTION_KEYS``), so that a copy of the database or of a backup does not give them away.

Several keys may be given, comma-separated: the first encrypts, every one decrypts, so a key is rotated by putting
the new one first, and the old one is dropped once every secret has been saved again.
"""
from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from socle.errors import InvalidRequest


class SealingUnavailable(Exception):
    """A stored secret cannot be read: no key is configured, or none of them opens it."""


class SecretBox:
    """Encrypts and decrypts short secrets; without keys, it can do neither and says why."""

    def __init__(self, keys: SecretStr | None) -> None:
        raw = [part.strip() for part in (keys.get_secret_value() if keys else "").split(",") if part.strip()]
        try:
            self._fernet = MultiFernet([Fernet(key) for key in raw]) if raw else None
        except ValueError as exc:  # the message never repeats a key
            raise ValueError("SOCLE_ENCRYPTION_KEYS: each key must be a Fernet key (32 bytes, URL-safe base64)") from exc

    @property
    def configured(self) -> bool:
        return self._fernet is not None

    def seal(self, secret: str) -> str:
        if self._fernet is None:
            raise InvalidRequest("la plateforme n'a pas de clé de chiffrement (SOCLE_ENCRYPTION_KEYS) : une clé de "
                                 "serveur ne peut pas être enregistrée. Demandez à l'équipe qui l'exploite d'en "
                                 "définir une.", param="api_key", code="encryption_not_configured")
        return self._fernet.encrypt(secret.encode()).decode()

    def reseal(self, token: str) -> str:
        """``token`` sealed again with the first key (after a rotation): any key opens it, the first seals it."""
        if self._fernet is None:
            raise SealingUnavailable("SOCLE_ENCRYPTION_KEYS is not set: stored secrets cannot be sealed again.")
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken as exc:
            raise SealingUnavailable("A stored secret cannot be decrypted with SOCLE_ENCRYPTION_KEYS: add the key "
                                     "it was encrypted with (after the current one).") from exc

    def open(self, token: str) -> str:
        if self._fernet is None:
            raise SealingUnavailable("The catalogue holds backend keys entered in the browser, and "
                                     "SOCLE_ENCRYPTION_KEYS is not set: set it to the key(s) they were encrypted with.")
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise SealingUnavailable("A backend key of the catalogue cannot be decrypted with SOCLE_ENCRYPTION_KEYS: "
                                     "add the key it was encrypted with (after the current one).") from exc
