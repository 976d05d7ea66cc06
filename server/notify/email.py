"""Sending one notice by SMTP (aiosmtplib): a plain-text message to one recipient.

Every failure (refused, unreachable, timed out, bad credentials) becomes a DeliveryError with a
one-line reason, which the outbox keeps as the row's last error and shows in `tetra notify status`.
"""

from __future__ import annotations

import email.utils
from email.message import EmailMessage

import aiosmtplib

from ca.errors import ConfigError
from ca.notices.settings import SmtpSettings
from server.notify import DeliveryError


async def send_email(smtp: SmtpSettings | None, recipient: str, subject: str, body: str) -> None:
    if smtp is None:
        raise DeliveryError("no [notifications.smtp] host is configured")
    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = recipient
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate(usegmt=True)
    message["Message-ID"] = email.utils.make_msgid(domain="tetra.invalid")
    message.set_content(body)
    try:
        password = smtp.password()
    except ConfigError as exc:
        raise DeliveryError(str(exc)) from None
    try:
        await aiosmtplib.send(
            message,
            hostname=smtp.host,
            port=smtp.port,
            username=smtp.username or None,
            password=password if smtp.username else None,
            use_tls=smtp.security == "tls",
            start_tls=smtp.security == "starttls",
            timeout=smtp.timeout_seconds,
        )
    except aiosmtplib.SMTPResponseException as exc:
        raise DeliveryError(
            f"SMTP {smtp.host}:{smtp.port} answered {exc.code} {' '.join(exc.message.split())}"
        ) from None
    except aiosmtplib.SMTPRecipientsRefused as exc:
        refused = "; ".join(f"{r.code} {' '.join(r.message.split())}" for r in exc.recipients)
        raise DeliveryError(f"SMTP {smtp.host}:{smtp.port} refused the recipient: {refused}") from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DeliveryError(f"SMTP {smtp.host}:{smtp.port}: {reason}") from None
