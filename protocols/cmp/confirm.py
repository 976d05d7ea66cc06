"""certConf -> pkiconf (RFC 9810 §5.3.18, RFC 9483 §4.1.1), and what becomes of an unconfirmed
certificate.

A client confirms the certificate it received by its hash: the certHash is computed with the
hash of the certificate's own signature algorithm (SHA-512 for Ed25519, RFC 9481 §2), or with
hashAlg when a cmp2021 client names one. A hash that does not match names another certificate
(badCertId). A certConf whose statusInfo is a rejection means the client will not use the
certificate: it is revoked at once. One that never comes is revoked by `revoke_unconfirmed`
after [cmp] confirm_wait, as RFC 9483 expects of a server that did not grant implicitConfirm;
both are audited by the core's revocation.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed448
from cryptography.hazmat.primitives.serialization import Encoding

from ca.errors import CAError, FailureReason
from ca.interface import CoreApi
from ca.sigalg import HASHES
from protocols.cmp import bodies
from protocols.cmp.enrol import Enroller
from protocols.cmp.errors import CmpFailure, FailInfo
from protocols.cmp.exchange import Answer, Exchange
from protocols.cmp.transactions import State, TransactionStore

log = logging.getLogger("tetra.cmp")

REJECTED_REASON = "cessationOfOperation"  # the requester will not use the certificate
UNCONFIRMED_REQUESTER = "cmp:unconfirmed"


def certificate_hash(certificate: x509.Certificate, hash_oid: str | None = None) -> bytes:
    """The certHash a client computes over ``certificate`` (DER)."""
    if hash_oid is not None:
        if hash_oid not in HASHES:
            raise CmpFailure(FailInfo.badAlg, f"hashAlg {hash_oid} is not supported")
        algorithm: hashes.HashAlgorithm = HASHES[hash_oid]()
    else:
        signature_hash = certificate.signature_hash_algorithm
        if signature_hash is not None:
            algorithm = signature_hash
        elif isinstance(certificate.public_key(), ed448.Ed448PublicKey):
            algorithm = hashes.SHAKE256(64)
        else:
            algorithm = hashes.SHA512()  # Ed25519-signed (RFC 9481 §2)
    digest = hashes.Hash(algorithm)
    digest.update(certificate.public_bytes(Encoding.DER))
    return digest.finalize()


@dataclass(frozen=True)
class Confirmer:
    core: CoreApi
    transactions: TransactionStore
    enroller: Enroller

    async def cert_conf(self, ex: Exchange) -> Answer:
        seen = await self.enroller.follow_up(ex)
        statuses = ex.message.body.getComponent()
        if len(statuses) != 1:
            raise CmpFailure(FailInfo.badRequest, "certConf must hold one CertStatus (RFC 9483 §4.1.1)")
        status = statuses[0]
        if seen.certificate_id is None:
            raise CmpFailure(FailInfo.badRequest, "nothing was issued in this transaction to confirm yet")
        if int(status["certReqId"]) != seen.cert_req_id:
            raise CmpFailure(FailInfo.badCertId, "certReqId does not name the request of this transaction")
        record = await self.core.certificate(seen.certificate_id)
        if record is None or record.der is None:
            raise CAError("the certificate of this transaction cannot be read", FailureReason.INTERNAL)
        certificate = x509.load_der_x509_certificate(record.der)
        hash_alg = status["hashAlg"]
        expected = certificate_hash(certificate, str(hash_alg["algorithm"]) if hash_alg.isValue else None)
        if not hmac.compare_digest(expected, bytes(status["certHash"])):
            raise CmpFailure(FailInfo.badCertId, "certHash does not match the certificate issued")
        if not await self.transactions.exchanged(seen, ex.their_nonce, ex.our_nonce):
            raise CmpFailure(
                FailInfo.transactionIdInUse, "another message of this transaction arrived at the same time"
            )
        info = status["statusInfo"]
        refused = info.isValue and int(info["status"]) == bodies.PkiStatus.rejection
        if seen.state == State.UNCONFIRMED:
            if refused:
                await _revoke(self.core, record.issuer, record.serial, ex.sender.requester.name)
                await self.transactions.settle(seen, State.REJECTED)
            else:
                await self.transactions.settle(seen, State.CONFIRMED)
        elif seen.state in (State.REJECTED, State.REVOKED):
            raise CmpFailure(FailInfo.certRevoked, "the certificate of this transaction was already revoked")
        return Answer(bodies.pki_conf())


async def _revoke(core: CoreApi, issuer: str, serial: int, requester: str) -> None:
    """Revoke, content when someone revoked it first."""
    try:
        await core.revoke(issuer, serial, REJECTED_REASON, requester=requester)
    except CAError as exc:
        if exc.reason is not FailureReason.ALREADY_REVOKED:
            raise


async def revoke_unconfirmed(core: CoreApi, transactions: TransactionStore) -> int:
    """Revoke every certificate whose certConf is overdue; how many were. Every server process
    runs this: a certificate another process revoked first is only marked here."""
    now: dt.datetime = core.clock.now()
    done = 0
    for row in await transactions.overdue(now):
        if row.certificate_id is None:
            continue
        record = await core.certificate(row.certificate_id)
        if record is None:
            continue
        await _revoke(core, record.issuer, record.serial, UNCONFIRMED_REQUESTER)
        if await transactions.settle(row, State.REVOKED):
            done += 1
            log.warning(
                "cmp: certificate %s/%s revoked: no certConf within the confirmation time",
                record.issuer,
                record.serial_hex,
            )
    return done
