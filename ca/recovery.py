"""Settle certificate intents that a crash left in 'signing' (ST-17).

An intent row is written before the key signs and its result after (ca/issuer.py). A process
killed in between leaves the row in 'signing' for ever: nothing says whether the key signed.
OCSP answers 'unknown' for such a row (it must not say 'good' for a serial that may never have
been signed), so it has to be settled, and once it is older than the signing grace no live
issuance can still be working on it:

* if a signed certificate whose TBS is byte-identical to the stored one, and whose signature
  verifies with the issuer's key, can be found (this process kept it after a failed result
  write: ca/unrecorded.py), it is stored and the row becomes 'issued';
* otherwise the serial is revoked (reason unspecified): it may have been signed and nothing
  proves it was not, so OCSP and the CRL say revoked, and never good.

Each settlement is one compare-and-set on status 'signing' with its audit event (actor
`tetra:recovery`), so an issuing process that stores its result at the same moment, or a
second recovery run, wins or loses cleanly. One WARNING line per row goes to the
`tetra.recovery` logger. Revocation and issuance events are the feed's own actions, so every
process's OCSP and the next CRL follow without further work.

The server runs `settle_stale_intents` on the lease holder (server/jobs.py) and
`store_unrecorded` in every process, since only the process that signed holds its certificate.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass, replace

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.exc import IntegrityError

from ca.audit import AuditEvent
from ca.errors import CAError
from ca.issuer import Issuer
from ca.records import CertificateRecord
from ca.revocation.feed import ISSUED, REVOKED
from ca.service import CertificateAuthority
from ca.sigalg import verify_bytes

log = logging.getLogger("tetra.recovery")

RECOVERY_ACTOR = "tetra:recovery"
BATCH = 500  # rows per read; a run goes on until none is left


@dataclass(frozen=True)
class Settled:
    """What recovery did to one intent row."""

    issuer: str
    serial: int
    outcome: str  # issued | revoked


def matching_certificate(issuer: Issuer, record: CertificateRecord, der: bytes) -> x509.Certificate | None:
    """The certificate in `der` if it is the one this intent asked for: the stored TBS byte for
    byte (CORE-04), signed by the issuer's key (CORE-11). None for anything else."""
    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    if certificate.tbs_certificate_bytes != record.tbs:
        return None
    public = issuer.certificate.public_key()
    if not verify_bytes(public, certificate.signature, record.tbs, certificate.signature_hash_algorithm):
        return None
    return certificate


async def store_unrecorded(ca: CertificateAuthority) -> list[Settled]:
    """Store the certificates this process signed but could not record, whatever their age.
    One the store still refuses stays kept; once past the grace, recovery revokes it."""
    settled: list[Settled] = []
    for issuer in ca.issuers.values():
        for row_id, der in issuer.unrecorded.items():
            record = await ca.certificates.get(row_id)
            if record is None or record.status != "signing":
                issuer.unrecorded.forget(row_id)  # settled by someone else meanwhile
            elif await _store(ca, issuer, record, der):
                issuer.unrecorded.forget(row_id)
                settled.append(Settled(record.issuer, record.serial, "issued"))
    return settled


async def settle_stale_intents(ca: CertificateAuthority, grace: dt.timedelta) -> list[Settled]:
    """Settle every row still 'signing' that is older than `grace` (run by one process at a
    time). Raises CAError if the store takes no writes: the next run tries again."""
    settled = await store_unrecorded(ca)
    cutoff = ca.clock.now() - grace
    while True:
        rows = await ca.certificates.stale_intents(cutoff, BATCH)
        for record in rows:
            issuer = ca.issuers.get(record.issuer)
            der = issuer.unrecorded.get(record.id) if issuer is not None else None
            if issuer is not None and der is not None and await _store(ca, issuer, record, der):
                settled.append(Settled(record.issuer, record.serial, "issued"))
            elif await _revoke(ca, record):
                settled.append(Settled(record.issuer, record.serial, "revoked"))
            if issuer is not None:
                issuer.unrecorded.forget(record.id)
        if len(rows) < BATCH:
            return settled


async def _store(ca: CertificateAuthority, issuer: Issuer, record: CertificateRecord, der: bytes) -> bool:
    """Store a kept certificate as the intent's result; False if it does not match the intent,
    the row left 'signing' meanwhile, or the store refuses the write."""
    certificate = matching_certificate(issuer, record, der)
    if certificate is None:
        log.error("recovery: the kept certificate for %s/%s differs from its intent", record.issuer, record.serial_hex)
        return False
    der = certificate.public_bytes(Encoding.DER)
    fingerprint = hashlib.sha256(der).hexdigest()
    now = ca.clock.now()
    event = AuditEvent(
        RECOVERY_ACTOR,
        ISSUED,
        f"{record.issuer}/{record.serial_hex}",
        {
            "fingerprint": fingerprint,
            "profile": record.profile,
            "protocol": record.protocol,
            "recovered": "the signed certificate was kept after its result write failed",
        },
    )
    values = {"status": "issued", "der": der, "fingerprint": fingerprint, "issued_at": now}
    try:
        if not await ca.certificates.settle_intent(record.id, values, event):
            return False
    except (IntegrityError, CAError) as exc:  # refused again (ST-07), or the store is away
        cause = exc.orig if isinstance(exc, IntegrityError) else exc.detail
        log.error("recovery: could not store the result for %s/%s: %s", record.issuer, record.serial_hex, cause)
        return False
    log.warning(
        "recovery: %s/%s was left signing since %s; stored the signed certificate this process kept",
        record.issuer,
        record.serial_hex,
        record.created_at.isoformat(),
    )
    return True


async def _revoke(ca: CertificateAuthority, record: CertificateRecord) -> bool:
    now = ca.clock.now()
    event = AuditEvent(
        RECOVERY_ACTOR,
        REVOKED,
        f"{record.issuer}/{record.serial_hex}",
        {
            "reason": "unspecified",
            "revoked_at": now.isoformat(),
            "tbs_sha256": hashlib.sha256(record.tbs).hexdigest(),
            "recovered": "no result was stored for this intent and no signed certificate was found",
        },
    )
    values = {"status": "revoked", "revoked_at": now, "revocation_reason": "unspecified"}
    if not await ca.certificates.settle_intent(record.id, values, event):
        return False
    log.warning(
        "recovery: %s/%s was left signing since %s; revoked (unspecified): it may have been signed",
        record.issuer,
        record.serial_hex,
        record.created_at.isoformat(),
    )
    revoked = replace(record, status="revoked", revoked_at=now, revocation_reason="unspecified")
    for observe in ca.revocation_observers:
        observe(revoked)
    return True
