"""Switching a CA to another generation: from a time on, that generation issues (CAL-06).

`tetra ca activate` and the management API's POST /cas/{name}/activate both come here, so the
checks (activation_refusal) and the audit event are the same whichever way an operator asks.
Nothing is signed and no key is touched: only the registry's activation time changes, and every
server process switches by its own clock at that time.
"""

from __future__ import annotations

import datetime as dt

from ca.authorities.model import Authority
from ca.authorities.rollover import activation_refusal
from ca.authorities.store import AuthorityStore
from ca.errors import BadRequest, CAError, FailureReason
from ca.store.db import Database


class ActivationConflict(CAError):
    """The generation was revoked between the check and the change."""

    reason = FailureReason.MALFORMED


async def schedule_activation(db: Database, name: str, at: dt.datetime, now: dt.datetime, actor: str) -> Authority:
    """Generation ``name`` issues from ``at`` (``now`` or later); BadRequest saying why not."""
    store = AuthorityStore(db)
    records = await store.all()
    record = next((a for a in records if a.name == name), None)
    family = [a for a in records if record is not None and a.family == record.family]
    refusal = activation_refusal(record, family, name, at, now)
    if refusal is not None or record is None:
        raise BadRequest(refusal or f"no CA generation named {name!r}")
    if not await store.schedule(name, at, actor):
        raise ActivationConflict(f"{name} was revoked meanwhile")
    return record
