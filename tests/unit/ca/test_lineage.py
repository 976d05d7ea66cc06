"""Which generation of a CA family issues, when each retires, and which issuer signs for a
same-key generation (ca/authorities/lineage.py; CAL-01, CAL-06)."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from ca.authorities.lineage import active_generation, group_retire_at, key_owner, state_of
from ca.authorities.model import Authority, KeyLocation, Kind, State, generation_name
from ca.hierarchy import CAProfile, create_intermediate, create_root

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
ROOT_KEY = ec.generate_private_key(ec.SECP256R1())
ROOT = create_root(CAProfile("Lineage Root"), ROOT_KEY, NOW - dt.timedelta(days=10))
FIRST_KEY = ec.generate_private_key(ec.SECP256R1())
SECOND_KEY = ec.generate_private_key(ec.SECP256R1())


def _cert(key: ec.EllipticCurvePrivateKey, days_ago: int = 5) -> bytes:
    cert = create_intermediate(
        CAProfile("Lineage Issuing CA", validity_days=365),
        key.public_key(),
        ROOT,
        ROOT_KEY,
        NOW - dt.timedelta(days=days_ago),
    )
    return cert.public_bytes(Encoding.DER)


def _gen(n: int, der: bytes | None, at: dt.datetime | None, revoked: dt.datetime | None = None) -> Authority:
    key = None if n == 1 else KeyLocation("software", key_file=f"keys/ca.{n}.key")
    return Authority(generation_name("ca", n), "ca", n, Kind.ISSUING, "root", der, key, at, NOW, revoked_at=revoked)


def test_generation_names() -> None:
    assert [generation_name("issuing-ca", n) for n in (1, 2, 10)] == ["issuing-ca", "issuing-ca.2", "issuing-ca.10"]


def test_the_latest_started_generation_issues() -> None:
    """CAL-06: activation is a time; before it the old generation issues, from it the new one."""
    first = _gen(1, _cert(FIRST_KEY), NOW - dt.timedelta(days=5))
    second = _gen(2, _cert(SECOND_KEY), NOW + dt.timedelta(hours=1))
    family = [first, second]
    assert active_generation(family, NOW) == first
    assert active_generation(family, NOW + dt.timedelta(hours=1)) == second
    assert [state_of(a, family, NOW) for a in family] == [State.ACTIVE, State.STAGED]
    later = NOW + dt.timedelta(hours=2)
    assert [state_of(a, family, later) for a in family] == [State.RETIRED, State.ACTIVE]
    assert group_retire_at("ca", family) == NOW + dt.timedelta(hours=1)
    assert group_retire_at("ca.2", family) is None


def test_unscheduled_pending_and_revoked_generations() -> None:
    first = _gen(1, _cert(FIRST_KEY), NOW - dt.timedelta(days=5))
    pending = _gen(2, None, None)
    staged = _gen(3, _cert(SECOND_KEY), None)
    family = [first, pending, staged]
    assert active_generation(family, NOW) == first
    assert [state_of(a, family, NOW) for a in family] == [State.ACTIVE, State.PENDING, State.STAGED]
    assert group_retire_at("ca", family) is None  # nothing scheduled: it issues on
    revoked = _gen(1, _cert(FIRST_KEY), NOW - dt.timedelta(days=5), revoked=NOW)
    # A revoked active generation stays the active one: issuance stops, its predecessor does not return.
    assert active_generation([revoked], NOW) == revoked
    assert state_of(revoked, [revoked], NOW) is State.REVOKED


def test_a_same_key_generation_belongs_to_the_first() -> None:
    """A same-key rollover certifies the same subject and key again: OCSP and CRLs cannot tell the
    two apart, so the first generation's issuer signs for both and retires only for another key."""
    first = _gen(1, _cert(FIRST_KEY, days_ago=5), NOW - dt.timedelta(days=5))
    renewed = _gen(2, _cert(FIRST_KEY, days_ago=1), NOW - dt.timedelta(hours=1))
    new_key = _gen(3, _cert(SECOND_KEY), NOW + dt.timedelta(days=1))
    family = [first, renewed, new_key]
    assert [key_owner(a, family) for a in family] == ["ca", "ca", "ca.3"]
    assert active_generation(family, NOW) == renewed
    assert group_retire_at("ca", family) == NOW + dt.timedelta(days=1)
    assert x509.load_der_x509_certificate(renewed.der or b"").public_key() == FIRST_KEY.public_key()
