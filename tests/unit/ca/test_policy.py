"""Profile policy without a store: validity arithmetic, serial properties, name normalization."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ca.csr import enrollment_from_csr
from ca.enrollment import AuthMethod, Requester
from ca.errors import CAError
from ca.issuer import new_serial
from ca.profiles.loader import load_profiles
from ca.profiles.policy import build_template, cabf_max_days
from tests.helpers import make_csr

PROFILES = load_profiles(Path(__file__).resolve().parents[3] / "conf" / "profiles")
OPERATOR = Requester("op", AuthMethod.OPERATOR)
UTC = dt.UTC
FAR = dt.datetime(2040, 1, 1, tzinfo=UTC)


def _template(profile: str, now: dt.datetime, *, not_after: dt.datetime | None = None, issuer_end: dt.datetime = FAR):  # type: ignore[no-untyped-def]
    csr, _ = make_csr(["www.example.com"])
    request = enrollment_from_csr(csr, protocol="cli", profile_name=profile, requester=OPERATOR)
    if not_after is not None:
        from dataclasses import replace

        request = replace(request, not_after=not_after)
    return build_template(PROFILES[profile], request, issuer_name="ca", issuer_not_after=issuer_end, now=now)


@pytest.mark.parametrize(
    ("day", "limit"),
    [
        (dt.datetime(2026, 3, 14, 12, tzinfo=UTC), 398),
        (dt.datetime(2026, 3, 15, 0, tzinfo=UTC), 200),
        (dt.datetime(2027, 3, 14, 23, 59, tzinfo=UTC), 200),
        (dt.datetime(2027, 3, 15, 0, tzinfo=UTC), 100),
        (dt.datetime(2029, 3, 15, 0, tzinfo=UTC), 47),
    ],
)
def test_cabf_maximum_by_date(day: dt.datetime, limit: int) -> None:
    """CORE-06: BR maxima switch on the dates, lengths inclusive."""
    assert cabf_max_days(day) == limit
    # A request for exactly the limit is accepted and is exactly N days inclusive...
    tpl = _template("tls-server", day, not_after=day + dt.timedelta(days=min(limit, 200)) - dt.timedelta(seconds=1))
    assert tpl.validity_days == min(limit, 200)
    # ...one second more is refused.
    with pytest.raises(CAError) as err:
        _template("tls-server", day, not_after=day + dt.timedelta(days=min(limit, 200)))
    assert "longer than" in err.value.detail


def test_default_validity_is_inclusive_and_capped_by_issuer() -> None:
    now = dt.datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)
    tpl = _template("tls-server", now)
    assert tpl.not_after - tpl.not_before == dt.timedelta(days=90, seconds=-1)
    short_issuer = now + dt.timedelta(days=10)
    tpl = _template("tls-server", now, issuer_end=short_issuer)
    assert tpl.not_after == short_issuer


def test_serial_generator_properties() -> None:
    """CORE-01: 10k draws, all distinct, positive, at most 20 octets, every bit position random."""
    serials = [new_serial() for _ in range(10_000)]
    assert len(set(serials)) == len(serials)
    assert all(s > 0 and (s.bit_length() + 8) // 8 <= 20 for s in serials)
    for bit in range(128):
        ones = sum((s >> bit) & 1 for s in serials)
        assert 0.45 < ones / len(serials) < 0.55, f"bit {bit} is biased: {ones}"
    assert serials != sorted(serials)
