"""Protocol-neutral revocation values: what OCSP asks (CertId, StatusQuery) and what we know (CertStatus)."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

# CertID hash algorithms by name and OID (RFC 6960 §4.1.1; RFC 9919 recommends SHA-256).
HASH_OIDS: dict[str, str] = {
    "sha1": "1.3.14.3.2.26",
    "sha256": "2.16.840.1.101.3.4.2.1",
    "sha384": "2.16.840.1.101.3.4.2.2",
    "sha512": "2.16.840.1.101.3.4.2.3",
}
HASH_BY_OID = {dotted: name for name, dotted in HASH_OIDS.items()}
NONCE_OID = "1.3.6.1.5.5.7.48.1.2"  # RFC 8954


class ResponseStatus(enum.IntEnum):
    """OCSPResponseStatus (RFC 6960 §4.2.1); 4 is unused."""

    SUCCESSFUL = 0
    MALFORMED_REQUEST = 1
    INTERNAL_ERROR = 2
    TRY_LATER = 3
    SIG_REQUIRED = 5
    UNAUTHORIZED = 6


@dataclass(frozen=True)
class CertId:
    hash_alg: str  # a key of HASH_OIDS
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int

    def __post_init__(self) -> None:
        if self.hash_alg not in HASH_OIDS:
            raise ValueError(f"unsupported CertID hash {self.hash_alg!r}")
        if self.serial < 0:
            raise ValueError("negative serial")


@dataclass(frozen=True)
class StatusQuery:
    """One OCSP request, decoded: the certificates asked about and the nonce to echo."""

    cert_ids: tuple[CertId, ...]
    nonce: bytes | None = None  # the nonce extension's extnValue, echoed byte for byte (RFC 8954)

    def __post_init__(self) -> None:
        if not self.cert_ids:
            raise ValueError("a request names at least one certificate")


@dataclass(frozen=True)
class CertStatus:
    kind: str  # good | revoked | unknown
    revoked_at: dt.datetime | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("good", "revoked", "unknown"):
            raise ValueError(f"bad status {self.kind!r}")
        if (self.kind == "revoked") != (self.revoked_at is not None):
            raise ValueError("a revoked status, and only that, has a revocation time")


GOOD = CertStatus("good")
UNKNOWN = CertStatus("unknown")


def status_of_row(row_status: str | None, *, revoked_at: dt.datetime | None, reason: str | None) -> CertStatus:
    """OCSP status of a certificates row (or of none).

    Only a stored result is 'good'. A 'signing' row is an issuance in flight, or one a crash
    cut short: the key may or may not have signed, so it is 'unknown' like a failed row or no
    row (a serial that may never have been signed is never reported good: docs/reliability.md,
    Conventions, "nothing issued" (iv); OCSP-01, ST-17). The recovery job (ca/recovery.py)
    settles a row left in 'signing' once it is older than the signing grace, as issued or
    revoked, and OCSP answers that from then on.
    """
    if row_status == "revoked" and revoked_at is not None:
        return CertStatus("revoked", revoked_at, reason)
    if row_status == "issued":
        return GOOD
    return UNKNOWN


@dataclass(frozen=True)
class OcspAnswer:
    """An encoded OCSPResponse and what HTTP caching needs to know about it."""

    der: bytes
    status: ResponseStatus = ResponseStatus.SUCCESSFUL
    produced_at: dt.datetime | None = None
    next_update: dt.datetime | None = None
    cacheable: bool = False  # pre-signed and without a nonce: GET answers may be cached (RFC 9919)
    etag: str = ""
