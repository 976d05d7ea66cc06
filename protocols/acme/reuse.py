"""How long a completed domain or IP validation may be used for issuance (ACME-24).

CA/Browser Forum Baseline Requirements §4.2.1, "Domain Name and IP Address
validation data reuse periods": a validation must have been completed at most
398 days before issuance for certificates issued before 2026-03-15, 200 days
from then, 100 days from 2027-03-15 and 10 days from 2029-03-15. The period is
the one in force when the certificate is issued, so a validation made under a
longer period stops counting early when a shorter one begins.
"""

from __future__ import annotations

import datetime as dt

# (issued on or after, maximum reuse period), oldest first.
BR_REUSE_PERIODS: tuple[tuple[dt.datetime, dt.timedelta], ...] = (
    (dt.datetime.min.replace(tzinfo=dt.UTC), dt.timedelta(days=398)),
    (dt.datetime(2026, 3, 15, tzinfo=dt.UTC), dt.timedelta(days=200)),
    (dt.datetime(2027, 3, 15, tzinfo=dt.UTC), dt.timedelta(days=100)),
    (dt.datetime(2029, 3, 15, tzinfo=dt.UTC), dt.timedelta(days=10)),
)


def br_reuse_period(at: dt.datetime) -> dt.timedelta:
    """The BR maximum age of validation data for a certificate issued at `at`."""
    period = BR_REUSE_PERIODS[0][1]
    for start, days in BR_REUSE_PERIODS:
        if at >= start:
            period = days
    return period


def br_usable_until(validated_at: dt.datetime) -> dt.datetime:
    """The first moment a validation completed at `validated_at` may no longer back issuance:
    issuance at T needs T - validated_at <= the period in force at T."""
    until = validated_at + br_reuse_period(validated_at)
    for start, period in BR_REUSE_PERIODS:
        if start > validated_at and until > start:
            until = min(until, max(start, validated_at + period))
    return until


def reuse_period(configured_seconds: int, at: dt.datetime) -> dt.timedelta:
    """How old a valid authorization may be to serve a new order at `at`: the configured
    period, never longer than the BR allows."""
    return min(dt.timedelta(seconds=configured_seconds), br_reuse_period(at))
