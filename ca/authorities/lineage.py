"""Which generation of a CA family issues at a moment, and when each generation retires.

Activation is a time, not an event: every server process that has read the schedule
switches at the same instant by its own clock, without waiting to hear from the others
(CAL-06), and a generation whose successor's time has come refuses to sign (ca/issuer.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ca.authorities.model import Authority, State


def active_generation(family: Iterable[Authority], now: dt.datetime) -> Authority | None:
    """The certified generation with the latest activation time not after ``now``. A revoked one
    still counts: revoking the issuing generation stops issuance rather than reviving its predecessor."""
    started = [a for a in family if a.der is not None and a.activate_at is not None and a.activate_at <= now]
    return max(started, key=lambda a: (a.activate_at, a.generation), default=None)


def key_owner(authority: Authority, family: Iterable[Authority]) -> str:
    """The earliest certified generation with the same subject and key as ``authority`` (often itself).

    A same-key rollover is a new certificate for the same issuer, not a new issuer: OCSP CertIDs
    (name and key hashes) and CRLs cannot tell the two apart, so the leaves of both are stored,
    answered and listed under the first generation's name, and the issuer presents whichever of
    the certificates is current."""
    if authority.der is None:
        return authority.name
    mine = (authority.certificate.subject, _spki(authority))
    for earlier in sorted(family, key=lambda a: a.generation):
        if earlier.der is not None and (earlier.certificate.subject, _spki(earlier)) == mine:
            return earlier.name
    return authority.name


def _spki(authority: Authority) -> bytes:
    return authority.certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def group_retire_at(owner: str, family: list[Authority]) -> dt.datetime | None:
    """When issuer ``owner`` (all generations sharing its key) is replaced by a generation with
    another key; None while nothing with another key is scheduled after its own generations."""
    group = [a for a in family if key_owner(a, family) == owner]
    started = [(a.activate_at, a.generation) for a in group if a.activate_at is not None]
    if not started:
        return None
    last = max(started)
    later = [
        a.activate_at
        for a in family
        if a.der is not None
        and a.activate_at is not None
        and key_owner(a, family) != owner
        and (a.activate_at, a.generation) > last
    ]
    return min(later, default=None)


def state_of(authority: Authority, family: Iterable[Authority], now: dt.datetime) -> State:
    if authority.revoked_at is not None:
        return State.REVOKED
    if authority.der is None:
        return State.PENDING
    active = active_generation(family, now)
    if active is not None and active.name == authority.name:
        return State.ACTIVE
    if authority.activate_at is None or authority.activate_at > now:
        return State.STAGED
    return State.RETIRED


def families(authorities: Iterable[Authority]) -> dict[str, list[Authority]]:
    grouped: dict[str, list[Authority]] = {}
    for a in authorities:
        grouped.setdefault(a.family, []).append(a)
    for members in grouped.values():
        members.sort(key=lambda a: a.generation)
    return grouped
