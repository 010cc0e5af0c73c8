"""Outgoing mail: SMTP when ``mail.smtp_host`` is set, otherwise the log (development).

:class:`SmtpMailer` uses the standard library's blocking ``smtplib`` in a worker thread, so the
event loop never waits on the mail server.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from email.message import EmailMessage
from typing import Protocol

from gql_api.config import MailSettings, Settings

log = logging.getLogger(__name__)

SMTP_TIMEOUT_S = 10.0


class Mailer(Protocol):
    async def send(self, *, to: str, subject: str, body: str) -> None: ...


def _message(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    return message


class SmtpMailer:
    def __init__(self, settings: MailSettings) -> None:
        assert settings.smtp_host, "SmtpMailer needs mail.smtp_host"
        self.settings = settings

    def _send_sync(self, message: EmailMessage) -> None:
        cfg = self.settings
        assert cfg.smtp_host is not None
        with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=SMTP_TIMEOUT_S) as smtp:
            if cfg.smtp_starttls:
                smtp.starttls()
            if cfg.smtp_username:
                smtp.login(cfg.smtp_username, cfg.smtp_password or "")
            smtp.send_message(message)

    async def send(self, *, to: str, subject: str, body: str) -> None:
        message = _message(self.settings.sender, to, subject, body)
        await asyncio.to_thread(self._send_sync, message)


class LogMailer:
    """No mail server configured. Outside production the message, links included, goes to the
    log so a developer can follow them; in production only the fact is logged, because the
    body carries single-use secrets and logs are read by more people than mailboxes."""

    def __init__(self, *, include_body: bool) -> None:
        self.include_body = include_body

    async def send(self, *, to: str, subject: str, body: str) -> None:
        if self.include_body:
            log.warning(
                "mail not sent (no mail.smtp_host): to=%s subject=%r\n%s", to, subject, body
            )
        else:
            log.error("mail not sent (no mail.smtp_host configured): subject=%r", subject)


def build_mailer(settings: Settings) -> Mailer:
    if settings.mail.smtp_host:
        return SmtpMailer(settings.mail)
    return LogMailer(include_body=not settings.is_production)


__all__ = ["LogMailer", "Mailer", "SmtpMailer", "build_mailer"]
