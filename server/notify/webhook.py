"""Posting one notice to a webhook, signed so the receiver knows it came from this CA.

Headers: ``Tetra-Delivery`` names the notice (a hash of its outbox key), the same on every retry,
so a receiver that got the first attempt but whose answer was lost can drop the repeat;
``Tetra-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``, the time being
when this attempt was sent, so a receiver refusing old timestamps refuses replays. A 2xx answer
is delivery; anything else, or no answer within the timeout, is retried.
See docs/notifications.md for how a receiver verifies (``verify_signature``).
"""

from __future__ import annotations

import hashlib
import hmac
import time

import aiohttp

from ca.errors import ConfigError
from ca.notices.settings import WebhookSettings
from server.notify import DeliveryError

TOLERANCE = 300  # seconds a receiver accepts between the signature's time and its own clock


def delivery_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def signature_header(secret: bytes, body: bytes, at: int) -> str:
    mac = hmac.new(secret, f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


def verify_signature(
    secret: bytes, header: str, body: bytes, now: float | None = None, tolerance: int = TOLERANCE
) -> bool:
    """Whether ``header`` (a Tetra-Signature value) signs ``body`` with ``secret`` at a time
    within ``tolerance`` seconds of ``now`` (default: this machine's clock)."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            fields.setdefault(name, []).append(value)
    stamps = fields.get("t", [])
    if len(stamps) != 1 or not stamps[0].isdigit():
        return False
    at = int(stamps[0])
    if abs((time.time() if now is None else now) - at) > tolerance:
        return False
    expected = signature_header(secret, body, at).partition(",v1=")[2]
    return any(hmac.compare_digest(expected, candidate) for candidate in fields.get("v1", []))


async def post_webhook(session: aiohttp.ClientSession, hook: WebhookSettings | None, key: str, body: str) -> None:
    if hook is None:
        raise DeliveryError("no such webhook in [notifications.webhooks] (removed from the config?)")
    try:
        secret = hook.secret()
    except ConfigError as exc:
        raise DeliveryError(str(exc)) from None
    data = body.encode()
    headers = {
        "Content-Type": "application/json",
        "Tetra-Delivery": delivery_id(key),
        "Tetra-Signature": signature_header(secret, data, int(time.time())),
    }
    try:
        async with session.post(
            hook.url, data=data, headers=headers, timeout=aiohttp.ClientTimeout(total=hook.timeout_seconds)
        ) as response:
            if 200 <= response.status < 300:
                return
            raise DeliveryError(f"webhook {hook.name}: {hook.url} answered HTTP {response.status}")
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DeliveryError(f"webhook {hook.name}: {hook.url}: {reason}") from None
