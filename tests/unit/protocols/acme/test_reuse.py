"""ACME-24: the CA/B Forum BR validation-data reuse periods by date, and how they bound authorizations."""

from __future__ import annotations

import datetime as dt

import pytest

from ca.enrollment import Identifier
from protocols.acme.records import Authz
from protocols.acme.reuse import br_reuse_period, br_usable_until, reuse_period


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


DAY = dt.timedelta(days=1)


@pytest.mark.parametrize(
    ("when", "days"),
    [
        ("2025-01-01T00:00", 398),
        ("2026-03-14T23:59:59", 398),
        ("2026-03-15T00:00", 200),
        ("2027-03-14T23:59:59", 200),
        ("2027-03-15T00:00", 100),
        ("2029-03-14T23:59:59", 100),
        ("2029-03-15T00:00", 10),
        ("2040-01-01T00:00", 10),
    ],
)
def test_br_period_by_issuance_date(when: str, days: int) -> None:
    assert br_reuse_period(at(when)) == dt.timedelta(days=days)


@pytest.mark.parametrize(
    ("validated", "usable_until"),
    [
        # Within one period: the period itself.
        ("2026-06-01T00:00", "2026-12-18T00:00"),
        ("2029-04-01T00:00", "2029-04-11T00:00"),
        # 398 days in force when validated, but issuance after 2026-03-15 allows only 200.
        ("2026-03-01T00:00", "2026-09-17T00:00"),
        ("2025-06-01T00:00", "2026-03-15T00:00"),  # already older than 200 days at the boundary
        # 200 -> 100 days at 2027-03-15.
        ("2027-01-01T00:00", "2027-04-11T00:00"),
        # 100 -> 10 days at 2029-03-15: 14 days old at the boundary, so it stops right there.
        ("2029-03-01T00:00", "2029-03-15T00:00"),
        ("2029-03-10T00:00", "2029-03-20T00:00"),
    ],
)
def test_validation_stops_counting_when_a_shorter_period_begins(validated: str, usable_until: str) -> None:
    assert br_usable_until(at(validated)) == at(usable_until)


def test_configured_period_is_capped_by_the_br() -> None:
    assert reuse_period(30 * 86400, at("2026-06-01T00:00")) == 30 * DAY
    assert reuse_period(398 * 86400, at("2026-06-01T00:00")) == 200 * DAY
    assert reuse_period(398 * 86400, at("2027-06-01T00:00")) == 100 * DAY
    assert reuse_period(30 * 86400, at("2029-06-01T00:00")) == 10 * DAY


def test_a_stored_valid_authorization_expires_by_the_br_even_with_a_later_expiry() -> None:
    """Rows written before a period shortened keep their old expires_at; status still follows the BR."""
    authz = Authz(
        1, 1, Identifier("dns", "a.example"), False, "valid",
        at("2027-01-01T00:00"), at("2027-12-31T00:00"), at("2027-01-01T00:00"), "http-01", (),
    )  # fmt: skip
    assert authz.current_status(at("2027-04-10T23:59")) == "valid"
    assert authz.current_status(at("2027-04-11T00:00")) == "expired"
