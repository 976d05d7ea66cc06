"""Delivering what is due in the outbox: claim, send through its channel, record the outcome."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import aiohttp

from ca.notices.outbox import Message, OutboxStore
from ca.notices.settings import NotificationSettings
from server.notify import DeliveryError
from server.notify.email import send_email
from server.notify.webhook import post_webhook


@dataclass(frozen=True)
class DeliveryResult:
    delivered: int = 0
    failed: int = 0  # to be retried
    given_up: int = 0


async def send(session: aiohttp.ClientSession, settings: NotificationSettings, message: Message) -> None:
    """Send one message now; DeliveryError says why not."""
    if message.channel == "email":
        await send_email(settings.smtp, message.recipient, message.subject, message.body)
    elif message.channel == "webhook":
        await post_webhook(session, settings.webhooks.get(message.recipient), message.key, message.body)
    else:
        raise DeliveryError(f"unknown channel {message.channel!r}")


async def deliver_due(
    outbox: OutboxStore, settings: NotificationSettings, holder: str, now: dt.datetime, *, limit: int = 50
) -> DeliveryResult:
    """One round: the rows due by ``now`` that this holder could claim."""
    delivered = failed = given_up = 0
    claimed = await outbox.claim_due(holder, now, limit)
    if not claimed:
        return DeliveryResult()
    async with aiohttp.ClientSession() as session:
        for message in claimed:
            try:
                await send(session, settings, message)
            except DeliveryError as exc:
                if await outbox.failed(message.id, str(exc), now):
                    given_up += 1
                else:
                    failed += 1
                continue
            await outbox.delivered(message.id, now)
            delivered += 1
    return DeliveryResult(delivered, failed, given_up)


async def deliver_all_due(
    outbox: OutboxStore, settings: NotificationSettings, holder: str, now: dt.datetime
) -> DeliveryResult:
    """Rounds until nothing due is left to claim (what `tetra notify run` does)."""
    total = DeliveryResult()
    while True:
        result = await deliver_due(outbox, settings, holder, now)
        total = DeliveryResult(
            total.delivered + result.delivered, total.failed + result.failed, total.given_up + result.given_up
        )
        if result == DeliveryResult():
            return total
