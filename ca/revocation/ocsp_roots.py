"""OCSP answers about the CA certificates our roots signed, served as the root pre-signed them.

The server has no root key, so it never signs these: `tetra ca revoke` and `tetra crl generate
--ca ROOT` store one response per child CA certificate and CertID hash, signed with the root
key (ca/authorities/root_publication.py), and this serves them. A CertID naming a root whose
serial has no stored answer is not ours to answer (`unauthorized`, RFC 6960 §2.3).

Root queries are rare (a client checks an intermediate once per chain it builds), so answers
are read from the store and kept a short while only. The registry as the server last read it
(``ca.authorities``, re-read every second) says which child CAs are revoked: when that set
changes, every kept answer is dropped, so a revocation is served as soon as it is read. The
answers are not marked cacheable over HTTP: a CDN must not keep a 'good' for a CA certificate
for the months a root's answer is valid.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

from ca.authorities.model import Authority, Kind
from ca.errors import CAError
from ca.revocation import ocsp_der, ocsp_store
from ca.revocation.asn1 import certificate_subject, public_key_bits
from ca.revocation.model import HASH_OIDS, CertId, OcspAnswer, ResponseStatus, StatusQuery
from ca.service import CertificateAuthority
from ca.store.repositories import serial_text

log = logging.getLogger("tetra.ocsp")

KEPT_SECONDS = 30.0  # how long a root's stored answer is served from memory
_TRY_LATER = OcspAnswer(ocsp_der.error_response(ResponseStatus.TRY_LATER), ResponseStatus.TRY_LATER)

HashKey = tuple[str, bytes, bytes]  # CertID hash, issuerNameHash, issuerKeyHash


def root_index(records: dict[str, Authority]) -> dict[HashKey, str]:
    """Every certified root generation by the issuer hashes a CertID for its children carries."""
    index: dict[HashKey, str] = {}
    for record in records.values():
        if record.kind is not Kind.ROOT or record.der is None:
            continue
        subject = certificate_subject(record.certificate)
        bits = public_key_bits(record.certificate.public_key())
        for alg in HASH_OIDS:
            index[(alg, hashlib.new(alg, subject).digest(), hashlib.new(alg, bits).digest())] = record.name
    return index


def revoked_children(records: dict[str, Authority]) -> frozenset[tuple[str, int]]:
    """(root, serial) of every certified CA a root signed that the registry says is revoked."""
    roots = {r.name for r in records.values() if r.kind is Kind.ROOT}
    return frozenset(
        (r.parent, r.certificate.serial_number)
        for r in records.values()
        if r.parent in roots and r.der is not None and r.revoked_at is not None
    )


class RootAnswers:
    def __init__(self, ca: CertificateAuthority, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.ca = ca
        self._monotonic = monotonic
        self._seen: dict[str, Authority] | None = None
        self._index: dict[HashKey, str] = {}
        self._revoked: frozenset[tuple[str, int]] = frozenset()
        self._kept: dict[tuple[str, int, str], tuple[OcspAnswer, float]] = {}

    def _read_registry(self) -> None:
        records = self.ca.authorities
        if records is self._seen:
            return
        self._seen = records
        self._index = root_index(records)
        revoked = revoked_children(records)
        if revoked != self._revoked:
            self._kept.clear()
        self._revoked = revoked

    def match(self, query: StatusQuery) -> tuple[str, CertId] | None:
        """The root and CertID of a query about one certificate a root of ours signed."""
        self._read_registry()
        if len(query.cert_ids) != 1:
            return None  # several certificates: a root's answers are one per response
        cid = query.cert_ids[0]
        root = self._index.get((cid.hash_alg, cid.issuer_name_hash, cid.issuer_key_hash))
        return None if root is None else (root, cid)

    def answer_now(self, root: str, cid: CertId) -> OcspAnswer | None:
        """The answer kept in memory, or None: `respond` reads the store."""
        kept = self._kept.get((root, cid.serial, cid.hash_alg))
        if kept is None or kept[1] <= self._monotonic():
            return None
        return kept[0]

    async def respond(self, root: str, cid: CertId) -> OcspAnswer | None:
        """The stored answer (a nonce is not echoed: RFC 8954 §2.1 lets a responder leave it
        out, and the root's key is not here to sign a fresh one); None when there is none."""
        kept = self.answer_now(root, cid)
        if kept is not None:
            return kept
        serial = serial_text(cid.serial)
        try:
            stored = await self.ca.db.read(lambda c: ocsp_store.stored_response(c, root, serial, cid.hash_alg))
        except CAError as exc:
            log.warning("OCSP answer for root %s failed: %s", root, exc.detail)
            return _TRY_LATER
        if stored is None:
            return None
        if stored.next_update <= self.ca.clock.now():
            log.warning(
                "root %s: its OCSP answers expired at %s; renew them with `tetra crl generate --ca %s`",
                root,
                stored.next_update.isoformat(),
                root,
            )
            return _TRY_LATER
        answer = OcspAnswer(stored.der, ResponseStatus.SUCCESSFUL, stored.produced_at, stored.next_update)
        self._kept[(root, cid.serial, cid.hash_alg)] = (answer, self._monotonic() + KEPT_SECONDS)
        return answer
