"""Which generation of a CA family issues at a moment, and when each generation retires.

Activation is a time, not an event: every server process that has read the schedule
switches at the same instant by its own clock, without waiting to hear from the others
(CAL-06), and a generation whose successor's time has come refuses to sign (ca/issuer.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from ca.authorities.model import Authority, State


def active_generation(family: Iterable[Authority], now: dt.datetime) -> Authority | None:
    """The certified generation with the latest activation time not after ``now``. A revoked one
    still counts: revoking the issuing generation stops issuance rather than reviving its predecessor."""
    started = [a for a in family if a.der is not None and a.activate_at is not None and a.activate_at <= now]
    return max(started, key=lambda a: (a.activate_at, a.generation), default=None)


def retire_at(authority: Authority, family: Iterable[Authority]) -> dt.datetime | None:
    """When the next generation after ``authority`` takes over (None: nothing is scheduled)."""
    if authority.activate_at is None:
        return None
    later = [
        a.activate_at
        for a in family
        if a.name != authority.name
        and a.der is not None
        and a.activate_at is not None
        and (a.activate_at, a.generation) > (authority.activate_at, authority.generation)
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
