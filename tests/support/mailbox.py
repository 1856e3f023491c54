"""A real SMTP server (aiosmtpd) on this machine, keeping what it receives: the e-mails the platform sends."""
from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import Message

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.servers import free_port


class Inbox:
    """What the SMTP server received, in order."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.port = 0

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802 (aiosmtpd's name)
        self.messages.append(message_from_bytes(envelope.content))  # type: ignore[attr-defined]
        return "250 Message accepted for delivery"

    def body(self, index: int = -1) -> str:
        payload = self.messages[index].get_payload(decode=True)
        assert isinstance(payload, bytes)
        return payload.decode()

    def link(self, base: str, index: int = -1) -> str:
        """The secret of the password link in a message, whose address starts with ``base``."""
        found = re.search(re.escape(base) + r"/ui/mot-de-passe\?token=(\S+)", self.body(index))
        assert found is not None, self.body(index)
        return found.group(1)

    def wait_for(self, count: int, timeout_s: float = 10.0) -> None:
        """Until ``count`` messages have arrived (some leave after the page answered)."""
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < count:
            assert time.monotonic() < deadline, f"{len(self.messages)} e-mails received, {count} expected"
            time.sleep(0.05)


@contextmanager
def smtp_server(*, login: tuple[str, str] | None = None) -> Iterator[Inbox]:
    """``login``: the user and password the server requires (AUTH, here without TLS), else none."""
    inbox = Inbox()
    inbox.port = free_port()
    options: dict[str, object] = {}
    if login is not None:
        def authenticator(server: object, session: object, envelope: object, mechanism: str,
                          data: object) -> AuthResult:
            given = (data.login.decode(), data.password.decode()) if isinstance(data, LoginPassword) else None
            return AuthResult(success=given == login)

        options = {"authenticator": authenticator, "auth_required": True, "auth_require_tls": False}
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port, **options)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()
