"""The notification operations an operator triggers by hand: one pass now (plan what is due,
deliver what is due) and a test message through a configured channel. `tetra notify run` /
`tetra notify test` and the management API's POST /notifications/run and /test both call
these, so they plan, route and word refusals the same way."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import aiohttp

from ca.errors import BadRequest
from ca.notices.outbox import Message, OutboxStore
from ca.notices.planner import NotificationPlanner, PlanResult
from ca.notices.settings import NotificationSettings
from ca.service import CertificateAuthority
from server.notify.delivery import DeliveryResult, deliver_all_due, send


@dataclass(frozen=True)
class PassResult:
    plan: PlanResult
    sent: DeliveryResult


async def run_pass(ca: CertificateAuthority, settings: NotificationSettings, holder: str) -> PassResult:
    """One pass: plan what is due, then deliver everything due now (``holder`` claims the rows)."""
    outbox = OutboxStore(ca.db, max_attempts=settings.max_attempts)
    now = ca.clock.now()
    plan = await NotificationPlanner(ca, settings, outbox).plan(now)
    return PassResult(plan, await deliver_all_due(outbox, settings, holder, now))


def test_message(
    settings: NotificationSettings, now: dt.datetime, *, email: str | None, webhook: str | None
) -> Message:
    """A test message to an email address or a configured webhook (by name); BadRequest for an
    address that is none or a webhook that is not configured. It is sent, never queued."""
    if webhook is not None and webhook not in settings.webhooks:
        known = ", ".join(settings.webhooks) or "none configured"
        raise BadRequest(f"{webhook}: no such webhook in [notifications.webhooks] ({known})")
    if email is not None and ("@" not in email or any(c.isspace() for c in email)):
        raise BadRequest(f"{email!r}: not an email address")
    channel, recipient = ("email", email) if email is not None else ("webhook", webhook or "")
    body = (
        f'{{"event": "test", "at": "{now.isoformat()}"}}'
        if channel == "webhook"
        else f"A test message from Tetra CA at {now:%Y-%m-%d %H:%M:%S} UTC: notifications reach you.\n"
    )
    key = f"test:{now.isoformat()}:{channel}:{recipient}"
    return Message(key, "test", "admin", channel, recipient, "[Tetra] test notification", body)


async def send_test(settings: NotificationSettings, message: Message) -> None:
    """Send it now; DeliveryError says why not."""
    async with aiohttp.ClientSession() as session:
        await send(session, settings, message)
