"""ir, cr, p10cr and kur (RFC 9483 §4.1), and pollReq for the ones that wait (§4.4).

The order matters, as in SCEP. The request is read and its proof of possession checked first
(cheap, and nothing is stored for a bad one). Then the transactionID is looked up: one seen
before is answered from its row (the same certificate again for the same key, CMP-13; the
pending request's state; transactionIdInUse for a replayed message or another key, CMP-05).
A new one is decided by the core (a refusal stores nothing), claimed in cmp_transactions, and
issued with the row linked in the same commit. The row records when a certConf is due, unless
implicitConfirm was asked for and granted (RFC 9483 §4.1.1).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from cryptography import x509
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1_alt_modules import rfc4211

from ca.crmf import enrollment_from_cert_req_msg
from ca.csr import enrollment_from_csr, parse_csr
from ca.enrollment import CertificateRef, EnrollmentKind, EnrollmentOutcome, EnrollmentRequest, Issued, Pending
from ca.errors import CAError, FailureReason
from ca.interface import CoreApi
from ca.keys import spki_digest
from ca.records import CertificateRecord
from protocols.cmp import bodies
from protocols.cmp.checks import recip_nonce
from protocols.cmp.config import CmpConfig
from protocols.cmp.der import children, explicit, read_tlv
from protocols.cmp.errors import CmpFailure, FailInfo, failure_for
from protocols.cmp.exchange import Answer, Exchange
from protocols.cmp.message import PkiMessage
from protocols.cmp.transactions import Claim, State, Transaction, TransactionStore

OLD_CERT_ID = str(rfc4211.id_regCtrl_oldCertID)


@dataclass(frozen=True)
class Wanted:
    """One certificate request read from an ir/cr/p10cr/kur body, its POP verified."""

    cert_req_id: int
    request: EnrollmentRequest
    replaced: CertificateRecord | None = None


def in_use(text: str) -> CmpFailure:
    return CmpFailure(FailInfo.transactionIdInUse, text)


@dataclass(frozen=True)
class Enroller:
    core: CoreApi
    config: CmpConfig
    transactions: TransactionStore

    # -- ir / cr / p10cr / kur ---------------------------------------------------------------
    async def enrol(self, ex: Exchange) -> Answer:
        tag = bodies.CERT_REP_TAGS[ex.message.body_type]
        wanted = self._wanted(ex)
        spki = spki_digest(wanted.request.public_key)
        seen = await self.transactions.find(ex.profile.name, ex.transaction_id, ex.now)
        if seen is not None:
            return await self._again(ex, seen, spki)
        decision = await self.core.decide(wanted.request, replaced=wanted.replaced)
        grant = self.config.implicit_confirm and ex.message.implicit_confirm
        claim = Claim(
            ex.profile.name,
            ex.transaction_id,
            ex.message.body_type,
            wanted.cert_req_id,
            spki,
            ex.sender.requester.name,
            ex.their_nonce,
            ex.our_nonce,
        )
        twin = await self.transactions.claim(claim, ex.now)
        if twin is not None:
            return await self._again(ex, twin, spki)
        confirm_by = None if grant else ex.now + self.config.confirm_wait
        try:
            outcome = await self.core.enroll(
                decision, on_issued=self.transactions.issued(ex.profile.name, ex.transaction_id, confirm_by)
            )
        except Exception:  # refused or failed: the client may try again under the same id
            await self.transactions.release(ex.profile.name, ex.transaction_id)
            raise
        if isinstance(outcome, Pending):
            await self.transactions.held(ex.profile.name, ex.transaction_id, outcome.request_id)
            return Answer(bodies.cert_rep(tag, wanted.cert_req_id, None))
        return self._delivery(ex, tag, wanted.cert_req_id, outcome.certificate, grant)

    def _wanted(self, ex: Exchange) -> Wanted:
        sender, body_type = ex.sender, ex.message.body_type
        if sender.profile is not None and sender.profile != ex.profile.name:
            raise CmpFailure(
                FailInfo.notAuthorized, f"this sender reference enrols under profile {sender.profile!r} only"
            )
        core_id = f"cmp:{ex.profile.name}:{ex.transaction_id.hex()}"
        content = ex.message.body.getComponent()
        if body_type == "p10cr":
            csr = parse_csr(body_content(ex.message))  # a signature that does not verify: BAD_SIGNATURE, badPOP
            request = enrollment_from_csr(
                csr, protocol="cmp", profile_name=ex.profile.name, requester=sender.requester, transaction_id=core_id
            )
            return Wanted(bodies.P10CR_CERT_REQ_ID, request)
        if len(content) != 1:
            raise CmpFailure(FailInfo.badRequest, "exactly one certificate request per message (RFC 9483 §4.1.1)")
        received = first_request(ex.message)
        if body_type != "kur":
            crmf = enrollment_from_cert_req_msg(
                content[0],
                profile_name=ex.profile.name,
                requester=sender.requester,
                trusted_ra=sender.ra,
                transaction_id=core_id,
                der=received,
            )
            return Wanted(crmf.cert_req_id, crmf.request)
        record = sender.record
        if record is None or sender.certificate is None:
            raise CmpFailure(
                FailInfo.notAuthorized, "a kur must be signed by the certificate of this CA that it updates"
            )  # CMP-10
        crmf = enrollment_from_cert_req_msg(
            content[0], profile_name=ex.profile.name, requester=sender.requester, transaction_id=core_id, der=received
        )
        _check_old_cert_id(crmf.controls.get(OLD_CERT_ID), sender.certificate)
        same_key = crmf.request.public_key == sender.certificate.public_key()
        request = replace(
            crmf.request,
            kind=EnrollmentKind.RENEW if same_key else EnrollmentKind.REKEY,
            replaces=CertificateRef(record.issuer, record.serial),
        )
        return Wanted(crmf.cert_req_id, request, record)

    async def _again(self, ex: Exchange, seen: Transaction, spki: str) -> Answer:
        """A transactionID seen before: the same request re-sent gets what the first got."""
        if bytes.fromhex(seen.their_nonce) == ex.their_nonce:
            raise in_use("this message was received before (same transactionID and senderNonce)")
        if (seen.spki_sha256, seen.body_type, seen.requester) != (spki, ex.message.body_type, ex.sender.requester.name):
            raise in_use("this transactionID belongs to another request")
        return await self._resume(ex, seen)

    # -- pollReq --------------------------------------------------------------------------------
    async def poll(self, ex: Exchange) -> Answer:
        seen = await self.follow_up(ex)
        return await self._resume(ex, seen)

    async def follow_up(self, ex: Exchange) -> Transaction:
        """The transaction a certConf or pollReq continues: it exists, the sender is the one who
        started it, and it echoes the senderNonce of our last reply (CMP-06)."""
        seen = await self.transactions.find(ex.profile.name, ex.transaction_id, ex.now)
        if seen is None:
            raise CmpFailure(
                FailInfo.badRequest, f"no enrolment is known under this transactionID ({ex.message.body_type})"
            )
        if seen.requester != ex.sender.requester.name:
            raise CmpFailure(FailInfo.notAuthorized, "this transaction was started by another sender")
        recip_nonce(ex.message, bytes.fromhex(seen.our_nonce))
        return seen

    # -- shared -----------------------------------------------------------------------------------
    async def _resume(self, ex: Exchange, seen: Transaction) -> Answer:
        """Answer from the row: waiting, the certificate, or the refusal; nonces recorded first."""
        if not await self.transactions.exchanged(seen, ex.their_nonce, ex.our_nonce):
            raise in_use("another message of this transaction arrived at the same time")
        tag = bodies.CERT_REP_TAGS[seen.body_type]
        if seen.state in (State.REJECTED, State.REVOKED):
            raise CmpFailure(FailInfo.certRevoked, "the certificate of this transaction was revoked")
        if seen.certificate_id is not None:
            certificate = await self._certificate(seen.certificate_id)
            grant = seen.state == State.CONFIRMED and ex.message.implicit_confirm
            return self._delivery(ex, tag, seen.cert_req_id, certificate, grant)
        if seen.request_id is None:  # a twin is issuing it right now
            return self._waiting(ex, tag, seen, 1)
        try:
            outcome: EnrollmentOutcome = await self.core.poll(seen.request_id)
        except CAError as exc:
            return Answer(bodies.cert_rep_rejection(tag, seen.cert_req_id, failure_for(exc)))
        if isinstance(outcome, Pending):
            return self._waiting(ex, tag, seen, self.config.poll_interval)
        grant = self.config.implicit_confirm and ex.message.implicit_confirm
        confirm_by = None if grant else ex.now + self.config.confirm_wait
        assert isinstance(outcome, Issued) and outcome.record_id is not None
        await self.transactions.delivered(ex.profile.name, ex.transaction_id, outcome.record_id, confirm_by)
        return self._delivery(ex, tag, seen.cert_req_id, outcome.certificate, grant)

    @staticmethod
    def _waiting(ex: Exchange, tag: int, seen: Transaction, check_after: int) -> Answer:
        """Not issued yet: a pollRep to a pollReq, a 'waiting' ip/cp/kup to a re-sent request."""
        if ex.message.body_type == "pollReq":
            return Answer(bodies.poll_rep(seen.cert_req_id, check_after, "waiting for approval"))
        return Answer(bodies.cert_rep(tag, seen.cert_req_id, None))

    async def _certificate(self, record_id: int) -> x509.Certificate:
        record = await self.core.certificate(record_id)
        if record is None or record.der is None:
            raise CAError("the certificate of this transaction cannot be read", FailureReason.INTERNAL)
        return x509.load_der_x509_certificate(record.der)

    def _delivery(self, ex: Exchange, tag: int, cert_req_id: int, certificate: x509.Certificate, grant: bool) -> Answer:
        """ip/cp/kup with the certificate. An ir authenticated by a shared secret also gets the
        roots in caPubs (RFC 9483 §4.1.1): the device has no trust anchor yet."""
        ca_pubs = self.core.roots if ex.sender.by_mac and tag == bodies.IP else ()
        return Answer(bodies.cert_rep(tag, cert_req_id, certificate, ca_pubs=ca_pubs), implicit_confirm=grant)


def body_content(message: PkiMessage) -> bytes:
    """The PKIBody's content as received, inside its [n] EXPLICIT tag (decode_message has walked
    these bytes as strict DER already): what the client signed, with no pyasn1 re-encoding."""
    part = message.protected_part
    body = children(part, read_tlv(part, 0, len(part)))[1]
    return body.inner(part)


def first_request(message: PkiMessage) -> bytes:
    """The first CertReqMsg of an ir/cr/kur as received: ca/crmf then verifies the POP over the
    bytes the client signed instead of re-encoding the decoded request (a third of the CPU an ir
    took)."""
    requests = body_content(message)
    return children(requests, read_tlv(requests, 0, len(requests)))[0].whole(requests)


def _check_old_cert_id(value: bytes | None, certificate: x509.Certificate) -> None:
    """kur's oldCertID control, when sent, must name the certificate that signed the kur."""
    if value is None:
        return
    try:
        old, rest = der_decoder.decode(value, asn1Spec=rfc4211.OldCertId())
        issuer = bytes(der_encoder.encode(old["issuer"]))
        serial = int(old["serialNumber"])
    except Exception:  # pyasn1's exception types are not a contract
        raise CmpFailure(FailInfo.badDataFormat, "oldCertID cannot be decoded") from None
    if rest or serial != certificate.serial_number or issuer != explicit(4, certificate.issuer.public_bytes()):
        raise CmpFailure(FailInfo.badCertId, "oldCertID does not name the certificate that signed this kur")
