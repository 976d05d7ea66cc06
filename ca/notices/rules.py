"""What is due for one certificate at a moment: pure decisions, no database, no clock.

Expiry: a threshold only applies to a certificate that lives more than twice as long (a 90-day
certificate is not "90 days to go" on the day it is issued), a short-lived certificate counts in
fractions of its lifetime, and only the most urgent threshold reached is due, so an import five
days before expiry gets the 7-day notice once rather than every notice it missed. How many
thresholds have passed says how far the notice escalates (owner, then team, then admins), and a
level without a way to reach it hands the notice on to the next, so none is dropped silently.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ca.inventory.model import OWN_TAG, InventoryRecord, Source
from ca.notices.settings import NotificationSettings

LEVELS = ("owner", "team", "admin")
WEAK_KEY_BELOW = 2048  # RSA and DSA
WEAK_SIGNATURES = ("sha1WithRSAEncryption", "ecdsa-with-SHA1", "dsa-with-sha1", "md5WithRSAEncryption")
WEAK_ENDPOINT_CODES = (
    "protocol-sslv3",
    "protocol-tls1.0",
    "protocol-tls1.1",
    "weak-cipher",
    "expired",
    "hostname-mismatch",
    "self-signed",
    "unknown-root",
    "missing-intermediate",
)


@dataclass(frozen=True)
class Threshold:
    label: str  # "30d", or "33%" of a short-lived certificate's lifetime
    remaining: dt.timedelta  # reached when the certificate has this long left


@dataclass(frozen=True)
class ExpiryDue:
    threshold: Threshold
    passed: int  # thresholds passed without renewal (0 = the first): how far it escalates


@dataclass(frozen=True)
class Route:
    level: str  # owner | team | admin
    channel: str  # email | webhook
    recipient: str  # an address, or a configured webhook's name


def applicable_thresholds(
    lifetime: dt.timedelta, days: Sequence[int], settings: NotificationSettings
) -> list[Threshold]:
    """The thresholds that apply to a certificate of this lifetime, earliest first."""
    if lifetime <= dt.timedelta(days=settings.short_lived_days):
        fractions = sorted(settings.short_lived_fractions, reverse=True)
        return [Threshold(f"{round(f * 100)}%", lifetime * f) for f in fractions]
    chosen = sorted((d for d in days if lifetime > dt.timedelta(days=2 * d)), reverse=True)
    return [Threshold(f"{d}d", dt.timedelta(days=d)) for d in chosen]


def due_expiry(record: InventoryRecord, now: dt.datetime, settings: NotificationSettings) -> ExpiryDue | None:
    """The most urgent threshold reached by ``now``, or None (not yet, expired, or revoked)."""
    if record.revoked_at is not None or record.not_after <= now:
        return None
    left = record.not_after - now
    days = settings.thresholds_for(record.team, record.profile)
    thresholds = applicable_thresholds(record.not_after - record.not_before, days, settings)
    reached = [index for index, t in enumerate(thresholds) if left <= t.remaining]
    if not reached:
        return None
    return ExpiryDue(thresholds[reached[-1]], reached[-1])


def escalation_levels(passed: int, settings: NotificationSettings) -> list[str]:
    levels = ["owner"]
    if passed >= settings.escalate_team_after:
        levels.append("team")
    if passed >= settings.escalate_admins_after:
        levels.append("admin")
    return levels


def is_email_address(text: str | None) -> bool:
    return bool(text) and "@" in (text or "") and not any(ch.isspace() for ch in text or "")


def routes(owner: str | None, team: str | None, levels: Iterable[str], settings: NotificationSettings) -> list[Route]:
    """Where each level's message goes. A level nobody can be reached at falls through to the
    next (owner -> team -> admins); an empty answer means not even the admins are configured."""
    wanted = set(levels)
    out: list[Route] = []
    seen: set[tuple[str, str]] = set()
    for index, level in enumerate(LEVELS):
        if level not in wanted:
            continue
        found = _level_routes(level, owner, team, settings)
        if not found and index + 1 < len(LEVELS):
            wanted.add(LEVELS[index + 1])
        for route in found:
            if (route.channel, route.recipient) not in seen:
                seen.add((route.channel, route.recipient))
                out.append(route)
    return out


def _level_routes(level: str, owner: str | None, team: str | None, settings: NotificationSettings) -> list[Route]:
    if level == "owner":
        return [Route("owner", "email", owner)] if owner and is_email_address(owner) else []
    if level == "team":
        route = settings.teams.get(team or "")
        if route is None:
            return []
        return [Route("team", "email", a) for a in route.email] + [Route("team", "webhook", w) for w in route.webhooks]
    return [Route("admin", "email", a) for a in settings.admin_email] + [
        Route("admin", "webhook", w) for w in settings.admin_webhooks
    ]


def renewed(record: InventoryRecord, others: Iterable[InventoryRecord]) -> bool:
    """Another unrevoked certificate takes over: it says it replaces this one and ends later, or
    it has the same names and issuer and was issued later."""
    for other in others:
        if other.id == record.id or other.revoked_at is not None:
            continue
        if other.replaces_id == record.id and other.not_after > record.not_after:
            return True
        if (
            set(other.sans) == set(record.sans)
            and other.issuer_dn == record.issuer_dn
            and other.not_before > record.not_before
        ):
            return True
    return False


def weaknesses(
    record: InventoryRecord, now: dt.datetime, settings: NotificationSettings, *, scans_finished: bool
) -> list[str]:
    """The weakness rules this certificate breaks (each is notified once per certificate)."""
    found: list[str] = []
    if record.key_algorithm in ("rsa", "dsa") and record.key_size < WEAK_KEY_BELOW:
        found.append("weak-key")
    if record.signature_algorithm.lower() in {s.lower() for s in WEAK_SIGNATURES}:
        found.append("weak-signature")
    if record.revoked_at is not None and record.last_seen_at is not None and record.last_seen_at > record.revoked_at:
        found.append("revoked-deployed")
    if (
        scans_finished
        and record.source is Source.TETRA
        and record.certificate_id is not None  # issued here for someone, not one of the CA's own
        and OWN_TAG not in record.tags
        and record.first_seen_at is None
        and record.revoked_at is None
        and record.not_after > now
        and record.not_before <= now - dt.timedelta(days=settings.never_deployed_after_days)
    ):
        found.append("never-deployed")
    return found
