"""The inventory's records and filters: plain frozen values, no SQL."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum


class Source(StrEnum):
    """Where a certificate came from: the first source that knew it, except that a certificate
    Tetra issued is Tetra's however it was first found."""

    TETRA = "tetra"  # issued here (mirrored from the CA's ledger)
    IMPORTED = "imported"  # from a file or another CA's export
    DISCOVERED = "discovered"  # found by a scan, network or disk


class Status(StrEnum):
    VALID = "valid"
    EXPIRING = "expiring"  # valid, but ends within the expiring window
    EXPIRED = "expired"
    REVOKED = "revoked"


OWN_TAG = "tetra-own"  # the CA's own certificates: roots, CA generations, RAs (never "deployed")
RENEWAL_METHODS = ("acme", "est", "scep", "cmp", "manual")
DEFAULT_EXPIRING_DAYS = 30  # what "expiring" means when nobody says


@dataclass(frozen=True)
class Sighting:
    kind: str  # endpoint | file
    location: str  # "host:port" or a path
    first_seen: dt.datetime
    last_seen: dt.datetime


@dataclass(frozen=True)
class InventoryRecord:
    id: int
    fingerprint: str
    source: Source
    certificate_id: int | None  # the CA ledger's row, for a certificate Tetra issued
    subject: str
    issuer_dn: str
    serial: str
    sans: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    key_algorithm: str
    key_size: int
    signature_algorithm: str
    is_ca: bool
    self_signed: bool
    owner: str | None
    team: str | None
    application: str | None
    tags: tuple[str, ...]
    renewal_method: str | None
    replaces_id: int | None
    revoked_at: dt.datetime | None
    first_seen_at: dt.datetime | None
    last_seen_at: dt.datetime | None
    created_at: dt.datetime
    # From the CA's ledger, for a certificate Tetra issued (None otherwise).
    issuer_name: str | None = None  # the CA that signed it, as profiles name it
    profile: str | None = None
    protocol: str | None = None
    revocation_reason: str | None = None
    declared_location: str | None = None  # where the requester said it would be deployed
    der: bytes = b""

    def status(self, now: dt.datetime, expiring_days: int = DEFAULT_EXPIRING_DAYS) -> Status:
        if self.revoked_at is not None:
            return Status.REVOKED
        if self.not_after <= now:
            return Status.EXPIRED
        if self.not_after <= now + dt.timedelta(days=expiring_days):
            return Status.EXPIRING
        return Status.VALID


@dataclass(frozen=True)
class InventoryFilter:
    """What `tetra inventory list|search|export` and reports ask for; every field narrows."""

    expiring_before: dt.datetime | None = None  # not_after at or before (expired ones included)
    valid_at: dt.datetime | None = None  # not yet expired at this time
    status: Status | None = None
    issuer: str | None = None  # a Tetra CA name, or text the issuer DN contains
    owner: str | None = None
    team: str | None = None
    teams: frozenset[str] | None = None  # any of these teams (a team-bound operator's view); None: any team
    tag: str | None = None
    key_size_below: int | None = None  # RSA and DSA keys shorter than this
    signature_algorithm: str | None = None  # exact name, e.g. sha1WithRSAEncryption
    seen_at: str | None = None  # a sighting's location starts with this
    not_seen_since: dt.datetime | None = None  # deployed, but not seen since this time
    source: Source | None = None
    profile: str | None = None  # Tetra-issued only
    protocol: str | None = None  # Tetra-issued only
    name: str | None = None  # a SAN or CN: the name itself and every name under it
    serial: str | None = None  # lowercase hex, no leading zeros
    now: dt.datetime | None = None  # the time "expired" and "expiring" are judged at (status filter)
    expiring_days: int = DEFAULT_EXPIRING_DAYS
    order: str = "id"  # id | expiry
    after_id: int | None = None  # keyset paging in id order
    limit: int = 1000


@dataclass(frozen=True)
class NewEntry:
    """A certificate to put in the inventory, with what its source knows about it."""

    der: bytes
    source: Source
    owner: str | None = None
    team: str | None = None
    application: str | None = None
    tags: tuple[str, ...] = ()
    renewal_method: str | None = None


@dataclass(frozen=True)
class Edit:
    """Operator changes to a record; None leaves a field as it is, "" clears it."""

    owner: str | None = None
    team: str | None = None
    application: str | None = None
    renewal_method: str | None = None
    add_tags: tuple[str, ...] = ()
    remove_tags: tuple[str, ...] = ()
    replaces_id: int | None = None
