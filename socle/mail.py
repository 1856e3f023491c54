"""Sending e-mail: the invitations and password links, through the administration's own mail server (SMTP).

The standard library's ``smtplib`` does the talking, in a thread of its own so that the event loop never waits
on the mail server. One connection per message: the platform sends few (one per invitation or reset). The
server's password never reaches a log or an error message; a failure is reported as
:class:`BackendUnavailable` naming only the server's host and port.
"""
from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Literal, Protocol

from socle.errors import BackendUnavailable
from socle.settings import Settings

log = logging.getLogger("socle.mail")
TlsMode = Literal["starttls", "tls", "none"]


@dataclass(frozen=True, slots=True)
class Mail:
    to: str
    subject: str
    body: str  # plain text: a link is clickable in every mail reader, and nothing in it can run


class Mailer(Protocol):
    async def send(self, mail: Mail) -> None:
        """Hand the message to the mail server, or :class:`BackendUnavailable`."""


class SmtpMailer:
    def __init__(self, *, host: str, port: int, sender: str, tls: TlsMode = "starttls", user: str | None = None,
                 password: str | None = None, timeout_s: float = 10.0) -> None:
        self.host, self.port, self.sender, self.tls = host, port, sender, tls
        self._user, self._password, self._timeout_s = user, password, timeout_s

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpMailer | None:
        """The configured mail server (``SOCLE_SMTP_*``), or None when there is none."""
        if not settings.smtp_host:
            return None
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return cls(host=settings.smtp_host, port=settings.smtp_port, sender=settings.smtp_sender,
                   tls=settings.smtp_tls, user=settings.smtp_user, password=password,
                   timeout_s=settings.smtp_timeout_s)

    def __repr__(self) -> str:  # never the password
        return f"SmtpMailer({self.host}:{self.port}, tls={self.tls})"

    async def send(self, mail: Mail) -> None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.sender, mail.to, mail.subject
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2].strip("> ") or None)
        message.set_content(mail.body)
        try:
            await asyncio.to_thread(self._deliver, message)
        except (smtplib.SMTPException, OSError) as exc:
            # The exception's own text may quote the server's reply; its type and the server are enough here.
            log.warning("the mail server %s:%d refused or failed a message: %s", self.host, self.port,
                        type(exc).__name__)
            raise BackendUnavailable(f"The mail server {self.host}:{self.port} could not take the message.",
                                     code="mail_unavailable") from None

    def _deliver(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        client: smtplib.SMTP = (smtplib.SMTP_SSL(self.host, self.port, timeout=self._timeout_s, context=context)
                                if self.tls == "tls" else smtplib.SMTP(self.host, self.port, timeout=self._timeout_s))
        with client:
            if self.tls == "starttls":
                client.starttls(context=context)
            if self._user:
                client.login(self._user, self._password or "")
            client.send_message(message)
