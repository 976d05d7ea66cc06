"""What the core's store hands out: plain frozen records, no SQLAlchemy.

Protocols, the CLI and the jobs read certificates, pending requests and credentials
through these types; how they are stored (ca/store/) stays private to the core.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ca.errors import BadRequest


@dataclass(frozen=True)
class CertificateRecord:
    """One row of the certificate table: an intent ('signing'), an issued, failed or revoked certificate."""

    id: int
    issuer: str
    serial: int
    status: str
    subject: str
    sans: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    key_algorithm: str
    key_size: int
    fingerprint: str | None
    profile: str
    protocol: str
    requester: str
    tbs: bytes
    der: bytes | None
    created_at: dt.datetime
    issued_at: dt.datetime | None
    revoked_at: dt.datetime | None
    revocation_reason: str | None
    invalidity_date: dt.datetime | None
    replaces_id: int | None
    request_id: int | None
    owner: str | None
    team: str | None
    application: str | None
    location: str | None

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")


def parse_serial(text: str) -> int:
    """A serial as an operator types it (hexadecimal, with or without colons or 0x): the
    inverse of ``serial_hex``, shared by every command that takes one."""
    cleaned = text.replace(":", "").lower().removeprefix("0x")
    try:
        return int(cleaned, 16)
    except ValueError:
        raise BadRequest(f"serial {text!r} is not hexadecimal") from None


@dataclass(frozen=True)
class RequestRecord:
    """An enrollment request held for an operator's decision (profile approval = manual)."""

    id: int
    status: str
    protocol: str
    profile: str
    transaction_id: str | None
    requester: str
    request: dict[str, Any]
    public_key: bytes
    raw_request: bytes
    subject: str
    sans: tuple[str, ...]
    created_at: dt.datetime
    decided_at: dt.datetime | None
    decided_by: str | None
    decision_note: str | None
    certificate_id: int | None
    # Whose request (migration 0013): team-bound operators see, and the team's approvers hear
    # of, their teams' requests only.
    team: str | None = None


@dataclass(frozen=True)
class Credential:
    """A protocol credential: an EST password, a SCEP challenge, an EAB or CMP MAC key."""

    id: int
    protocol: str
    kind: str
    key_id: str
    profile: str | None
    identities: tuple[str, ...]
    one_time: bool
    bound_to: str | None
    secret: bytes | None
    # For operator listings (`tetra scep challenge list`: unused, used or expired).
    created_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    used_at: dt.datetime | None = None

    def state(self, revoked: bool, now: dt.datetime) -> str:
        """What an operator listing shows: "revoked", "used" (a one-time secret spent),
        "expired", or "active" (still usable); the API and `tetra scep challenge list` both ask here."""
        if revoked:
            return "revoked"
        if self.used_at is not None:
            return "used"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"
