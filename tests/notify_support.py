"""What the notification tests share: certificates with owners (issued by the real CA, or made
elsewhere and imported), a real SMTP server on loopback (aiosmtpd) that counts what it accepts and
can refuse, and settings pointing at it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import email.policy
import threading
from email.message import Message as EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from cryptography import x509

from ca.csr import enrollment_from_csr
from ca.enrollment import AuthMethod, InventoryFields, Issued, Requester
from ca.inventory.model import InventoryFilter, InventoryRecord, NewEntry, Source
from ca.notices.settings import NotificationSettings, SmtpSettings, TeamRoute
from ca.service import CertificateAuthority
from tests.helpers import enroll, make_csr
from tests.tetra_process import free_port

OPERATOR = Requester("test-operator", AuthMethod.OPERATOR)
ADMIN = "pki-admins@example.com"
TEAM = "web-team@example.com"


async def issue(
    ca: CertificateAuthority, name: str, *, owner: str | None, team: str | None = "web", days: int | None = None
) -> InventoryRecord:
    """A tls-server certificate from the real CA (90 days unless ``days``), as its inventory record."""
    csr, _ = make_csr([name])
    request = enrollment_from_csr(
        csr, protocol="cli", profile_name="tls-server", requester=OPERATOR, inventory=InventoryFields(owner, team)
    )
    if days is not None:
        request = dataclasses.replace(request, not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=days))
    outcome = await enroll(ca, request)
    assert isinstance(outcome, Issued)
    await ca.inventory.sync(dt.datetime.now(dt.UTC))
    return await record_of(ca, outcome.certificate)


async def record_of(ca: CertificateAuthority, certificate: x509.Certificate) -> InventoryRecord:
    serial = format(certificate.serial_number, "x")
    found = [r for r in await ca.inventory.records(InventoryFilter(limit=100_000)) if r.serial == serial]
    assert len(found) == 1
    full = await ca.inventory.get(found[0].id)  # with its DER
    assert full is not None
    return full


async def import_one(ca: CertificateAuthority, der: bytes, *, owner: str | None, team: str | None) -> InventoryRecord:
    placed = await ca.inventory.add(
        [NewEntry(der, Source.IMPORTED, owner=owner, team=team)], actor="test", now=dt.datetime.now(dt.UTC)
    )
    found = await ca.inventory.get(placed[0].id)
    assert found is not None
    return found


def notification_settings(smtp_port: int = 25, **changes: Any) -> NotificationSettings:
    """Admins and the "web" team by email, SMTP on loopback without TLS."""
    base = NotificationSettings(
        enabled=True,
        admin_email=(ADMIN,),
        teams={"web": TeamRoute(email=(TEAM,))},
        smtp=SmtpSettings(host="127.0.0.1", port=smtp_port, security="none", sender="tetra@example.com"),
    )
    return dataclasses.replace(base, **changes)


class SmtpSink:
    """A real SMTP server on 127.0.0.1 (aiosmtpd, in its own thread): keeps every message it
    accepts; answers 451 to the first ``refuse_first`` DATA commands (or to all, with -1)."""

    def __init__(self, refuse_first: int = 0) -> None:
        self.refuse_first = refuse_first
        self.messages: list[EmailMessage] = []
        self.refused = 0
        self._lock = threading.Lock()
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            if self.refuse_first < 0 or self.refused < self.refuse_first:
                self.refused += 1
                return "451 4.3.0 try again later"
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            message["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
            self.messages.append(message)
        return "250 OK"

    def __enter__(self) -> SmtpSink:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    def settings(self, **changes: Any) -> NotificationSettings:
        return notification_settings(self.port, **changes)

    def received(self) -> list[tuple[str, str]]:
        """(recipient, subject) of every accepted message."""
        with self._lock:
            return [(str(m["X-Envelope-To"]), str(m["Subject"])) for m in self.messages]
