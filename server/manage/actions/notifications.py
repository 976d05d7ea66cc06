"""Notifications through the management plane: the outbox's state and rows, one pass now, and
a test message. The pass and the test are the very operations `tetra notify run` / `test` run
(server/notify/operations.py); here they are also audited with the acting user (OPS-07):
a pass queues and sends mail, a test sends one.

The outbox holds every team's notices (recipients, subjects naming certificates): it is shown
to principals that see every team only.
"""

from __future__ import annotations

import os
import socket

from ca.audit import AuditEvent
from ca.notices.outbox import Message, OutboxStatus, OutboxStore
from ca.notices.settings import NotificationSettings
from ca.operators.principal import Principal
from ca.operators.roles import Permission
from ca.service import CertificateAuthority
from server.manage.actions.access import require
from server.manage.actions.errors import Forbidden
from server.notify import DeliveryError
from server.notify.operations import PassResult, run_pass, send_test, test_message

EVERY_TEAM = "the outbox holds every team's notices: it is for operators who see every team"


async def status(ca: CertificateAuthority, principal: Principal) -> OutboxStatus:
    require(principal, Permission.NOTIFICATIONS_READ)
    _every_team(principal)
    return await OutboxStore(ca.db).status()


async def outbox(
    ca: CertificateAuthority, principal: Principal, *, state: str | None, after_id: int | None, limit: int
) -> list[Message]:
    require(principal, Permission.NOTIFICATIONS_READ)
    _every_team(principal)
    return await OutboxStore(ca.db).messages(state=state, after_id=after_id, limit=limit)


async def run_now(ca: CertificateAuthority, settings: NotificationSettings, principal: Principal) -> PassResult:
    require(principal, Permission.NOTIFICATIONS_MANAGE)
    result = await run_pass(ca, settings, f"api:{socket.gethostname()}:{os.getpid()}")
    details: dict[str, object] = {
        "due": result.plan.due,
        "queued": result.plan.queued,
        "delivered": result.sent.delivered,
        "failed": result.sent.failed,
        "given_up": result.sent.given_up,
    }
    await ca.audit.append(AuditEvent(principal.actor, "notification.pass_run", "notifications", details))
    return result


async def send_test_message(
    ca: CertificateAuthority,
    settings: NotificationSettings,
    principal: Principal,
    *,
    email: str | None,
    webhook: str | None,
) -> str | None:
    """Send a test message now: None when delivered, else why not (the transport's words).
    Audited either way: a message left the CA, or was tried."""
    require(principal, Permission.NOTIFICATIONS_MANAGE)
    message = test_message(settings, ca.clock.now(), email=email, webhook=webhook)
    error = None
    try:
        await send_test(settings, message)
    except DeliveryError as exc:
        error = str(exc)
    details = {"channel": message.channel, "recipient": message.recipient, "delivered": error is None}
    await ca.audit.append(AuditEvent(principal.actor, "notification.test_sent", "notifications", details))
    return error


def _every_team(principal: Principal) -> None:
    if not principal.all_teams:
        raise Forbidden(EVERY_TEAM)
