"""The notification rules as pure decisions: which expiry threshold is due, how far it escalates,
who receives it when a level cannot be reached, when a renewal silences it, and the weakness
rules (CLM-02 once-only starts here: one threshold due at a time)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from ca.inventory.model import OWN_TAG, InventoryRecord, Source
from ca.notices.rules import (
    Route,
    applicable_thresholds,
    due_expiry,
    escalation_levels,
    renewed,
    routes,
    weaknesses,
)
from ca.notices.settings import NotificationSettings, TeamRoute

T0 = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
SETTINGS = NotificationSettings(
    admin_email=("pki-admins@example.com",),
    teams={"web": TeamRoute(email=("web@example.com",), webhooks=("chat",))},
)


def record(lifetime_days: float, *, id: int = 1, **changes: object) -> InventoryRecord:
    base = InventoryRecord(
        id=id, fingerprint="ab" * 32, source=Source.TETRA, certificate_id=1, subject="CN=www.example.com",
        issuer_dn="CN=Issuing CA", serial="01", sans=("dns:www.example.com",), not_before=T0,
        not_after=T0 + lifetime_days * DAY, key_algorithm="ec", key_size=256,
        signature_algorithm="ecdsa-with-SHA256", is_ca=False, self_signed=False, owner="alice@example.com",
        team="web", application=None, tags=(), renewal_method=None, replaces_id=None, revoked_at=None,
        first_seen_at=None, last_seen_at=None, created_at=T0, profile="tls-server",
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("lifetime", "labels"),
    [
        (398, ["90d", "60d", "30d", "14d", "7d", "1d"]),
        (90, ["30d", "14d", "7d", "1d"]),
        (47, ["14d", "7d", "1d"]),
        (3, ["33%", "10%"]),
    ],
)
def test_thresholds_that_apply_to_a_lifetime(lifetime: int, labels: list[str]) -> None:
    """A day threshold applies only to a certificate living more than twice as long; a short-lived
    one (at most short_lived_days) counts in fractions of its lifetime."""
    found = applicable_thresholds(lifetime * DAY, SETTINGS.thresholds_days, SETTINGS)
    assert [t.label for t in found] == labels
    if lifetime == 3:
        assert found[0].remaining == 3 * DAY * 0.33


def test_due_is_the_most_urgent_threshold_reached_only() -> None:
    """CLM-02: an import five days before expiry gets the 7-day notice (not 30 and 14 as well);
    a 90-day certificate is not due at all on the day it is issued, and is due at 30 days left."""
    cert = record(90)
    assert due_expiry(cert, T0, SETTINGS) is None
    assert due_expiry(cert, T0 + 59 * DAY, SETTINGS) is None
    at_30 = due_expiry(cert, T0 + 60 * DAY, SETTINGS)
    assert at_30 is not None and at_30.threshold.label == "30d" and at_30.passed == 0
    late = due_expiry(cert, T0 + 85 * DAY, SETTINGS)
    assert late is not None and late.threshold.label == "7d" and late.passed == 2
    assert due_expiry(cert, T0 + 90 * DAY, SETTINGS) is None  # expired: no expiry notice
    assert due_expiry(dataclasses.replace(cert, revoked_at=T0), T0 + 85 * DAY, SETTINGS) is None
    short = due_expiry(record(3), T0 + 2.5 * DAY, SETTINGS)
    assert short is not None and short.threshold.label == "33%"


def test_team_and_profile_thresholds() -> None:
    """The team's list wins over the profile's, which wins over the default."""
    settings = dataclasses.replace(
        SETTINGS,
        teams={"web": TeamRoute(thresholds_days=(20,))},
        profile_thresholds={"tls-server": (10,)},
    )
    assert due_expiry(record(90), T0 + 70 * DAY, settings) is not None  # 20 days left: the team's 20d
    other_team = record(90, team="ops")
    assert due_expiry(other_team, T0 + 70 * DAY, settings) is None  # the profile's 10d only
    found = due_expiry(other_team, T0 + 80 * DAY, settings)
    assert found is not None and found.threshold.label == "10d"


def test_escalation_by_thresholds_passed() -> None:
    assert escalation_levels(0, SETTINGS) == ["owner"]
    assert escalation_levels(1, SETTINGS) == ["owner", "team"]
    assert escalation_levels(2, SETTINGS) == ["owner", "team", "admin"]


def test_routes_fall_through_to_the_next_level() -> None:
    """A level without a route hands the notice on: owner -> team -> admins; nothing dropped."""
    assert routes("alice@example.com", "web", ["owner"], SETTINGS) == [Route("owner", "email", "alice@example.com")]
    assert routes("alice (no address)", "web", ["owner"], SETTINGS) == [
        Route("team", "email", "web@example.com"),
        Route("team", "webhook", "chat"),
    ]
    assert routes(None, "unknown-team", ["owner"], SETTINGS) == [Route("admin", "email", "pki-admins@example.com")]
    assert routes(None, None, ["owner"], NotificationSettings()) == []
    everyone = routes("alice@example.com", "web", ["owner", "team", "admin"], SETTINGS)
    assert [r.level for r in everyone] == ["owner", "team", "team", "admin"]
    # The same address at two levels is told once.
    same = dataclasses.replace(SETTINGS, admin_email=("alice@example.com",))
    assert [r.recipient for r in routes("alice@example.com", None, ["owner", "admin"], same)] == ["alice@example.com"]


def test_a_renewal_silences_the_expiry_notice() -> None:
    """Renewed: a later certificate replacing it, or one with the same names and issuer issued later;
    a revoked successor, or one with other names, does not count."""
    old = record(90, id=1)
    replacing = record(90, id=2, replaces_id=1, not_before=T0 + 60 * DAY, not_after=T0 + 150 * DAY, sans=("dns:x",))
    same_names = record(90, id=3, not_before=T0 + 61 * DAY, not_after=T0 + 151 * DAY)
    assert renewed(old, [replacing]) and renewed(old, [same_names])
    assert not renewed(old, [dataclasses.replace(same_names, revoked_at=T0 + 62 * DAY)])
    assert not renewed(old, [dataclasses.replace(same_names, sans=("dns:www.example.com", "dns:api.example.com"))])
    assert not renewed(old, [dataclasses.replace(same_names, issuer_dn="CN=Other CA")])
    assert not renewed(old, [old])


def test_weakness_rules() -> None:
    now = T0 + 30 * DAY
    assert weaknesses(record(90), now, SETTINGS, scans_finished=False) == []
    legacy = record(365, key_algorithm="rsa", key_size=1024, signature_algorithm="sha1WithRSAEncryption")
    assert weaknesses(legacy, now, SETTINGS, scans_finished=False) == ["weak-key", "weak-signature"]
    assert weaknesses(record(90, key_algorithm="rsa", key_size=2048), now, SETTINGS, scans_finished=False) == []
    revoked = record(90, revoked_at=T0 + DAY, first_seen_at=T0, last_seen_at=T0 + 2 * DAY)
    assert weaknesses(revoked, now, SETTINGS, scans_finished=False) == ["revoked-deployed"]
    seen_before = dataclasses.replace(revoked, last_seen_at=T0)
    assert weaknesses(seen_before, now, SETTINGS, scans_finished=False) == []
    idle = record(90)
    assert weaknesses(idle, now, SETTINGS, scans_finished=True) == ["never-deployed"]
    assert weaknesses(idle, T0 + 3 * DAY, SETTINGS, scans_finished=True) == []  # too young
    assert weaknesses(dataclasses.replace(idle, source=Source.IMPORTED), now, SETTINGS, scans_finished=True) == []
    assert weaknesses(dataclasses.replace(idle, first_seen_at=T0), now, SETTINGS, scans_finished=True) == []
    own = dataclasses.replace(idle, tags=(OWN_TAG,))  # the CA's own RA or HTTPS certificate
    assert weaknesses(own, now, SETTINGS, scans_finished=True) == []
