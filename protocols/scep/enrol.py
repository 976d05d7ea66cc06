"""PKCSReq, RenewalReq and CertPoll (RFC 8894 §3.3.1, §3.3.3): from an opened request to the
certificates a CertRep SUCCESS carries, or None for PENDING.

The order matters. A transactionID seen before is answered from its row first (the same
certificate again, or the pending request's state: SCEP-17, SCEP-14), before any challenge is
looked at: a client that lost its CertRep must not need a second one-time challenge. A new one
is checked (signer holds the CSR key, SCEP-06; the id belongs to the key; the challenge), decided
by the core (nothing stored on a refusal), then claimed in scep_transactions and issued with the
row linked in the same commit. A twin that lost the claim answers from the winner's row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from cryptography import x509

from ca.cms.scep import FailInfo, IssuerAndSubject
from ca.csr import enrollment_from_csr
from ca.enrollment import CertificateRef, EnrollmentKind, EnrollmentOutcome, Issued, Pending
from ca.errors import CAError, FailureReason
from ca.interface import CoreApi, Decision
from ca.keys import spki_digest
from ca.profiles.model import Profile
from protocols.scep.challenge import ChallengeChecker
from protocols.scep.config import ScepProfileSettings
from protocols.scep.csr import parse_scep_csr
from protocols.scep.errors import ScepFailure, bad_request
from protocols.scep.request import ScepRequest
from protocols.scep.transaction_ids import matches_key
from protocols.scep.transactions import Transaction, TransactionStore

Certificates = tuple[x509.Certificate, ...] | None  # what a SUCCESS carries; None: PENDING


def renewal_row(renewed: x509.Certificate, transaction_id: str) -> str:
    """The scep_transactions key of a RenewalReq. Not the bare transactionID: a renewal with the
    same key has the same one as the PKCSReq that got the certificate, and would be answered
    with that old certificate. Per renewed certificate, so a retry finds its renewal and the next
    renewal (signed by the new certificate) is a new one."""
    digest = hashlib.sha256(f"{renewed.serial_number:x}:{transaction_id}".encode()).hexdigest()
    return f"renew:{digest}"


@dataclass(frozen=True)
class Enroller:
    core: CoreApi
    transactions: TransactionStore
    challenges: ChallengeChecker

    # -- PKCSReq ---------------------------------------------------------------------------
    async def pkcs_req(
        self, profile: Profile, settings: ScepProfileSettings, request: ScepRequest, address: str
    ) -> Certificates:
        csr = self._csr(request, settings)
        if request.signer.public_key() != csr.public_key():
            if request.signer.issuer != request.signer.subject:
                # The draft-nourse renewal sscep and older devices send: a PKCSReq signed by the
                # certificate it renews (ours or not: renewal_req decides, SCEP-07).
                return await self.renewal_req(profile, settings, request)
            raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "the signer certificate does not hold the CSR's key")
        # SCEP-06: an expired signer is refused; one not yet valid is not (devices with unset clocks
        # make their throw-away certificate in the past or the future: its key is what counts).
        if request.signer.not_valid_after_utc < self.core.clock.now():
            raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "the signer certificate has expired")
        self._check_transaction_id(request, csr)
        spki = spki_digest(csr.public_key())
        row = request.transaction_id
        seen = await self.transactions.find(profile.name, row, self.core.clock.now())
        if seen is not None:
            return await self._resume(seen, spki, profile, settings)
        requester = await self.challenges.requester(
            profile.name, settings, csr, transaction_id=request.transaction_id, address=address
        )
        enrollment = enrollment_from_csr(
            csr,
            protocol="scep",
            profile_name=profile.name,
            requester=requester,
            transaction_id=self._core_id(profile, row),
        )
        return await self._issue(profile, settings, row, await self.core.decide(enrollment), spki)

    # -- RenewalReq ----------------------------------------------------------------------------
    async def renewal_req(self, profile: Profile, settings: ScepProfileSettings, request: ScepRequest) -> Certificates:
        """Signed by the certificate being renewed (ours, valid, not revoked, same subject: SCEP-07)."""
        csr = self._csr(request, settings)
        try:
            record = await self.core.authenticate_certificate(request.signer)
        except CAError as exc:
            raise bad_request(
                f"RenewalReq must be signed by a valid certificate of this CA: {exc.public_detail()}"
            ) from None
        self._check_transaction_id(request, csr)
        spki = spki_digest(csr.public_key())
        row = renewal_row(request.signer, request.transaction_id)
        seen = await self.transactions.find(profile.name, row, self.core.clock.now())
        if seen is not None:
            return await self._resume(seen, spki, profile, settings)
        same_key = csr.public_key() == request.signer.public_key()
        enrollment = enrollment_from_csr(
            csr,
            protocol="scep",
            profile_name=profile.name,
            requester=self.core.renewal_requester(record),
            kind=EnrollmentKind.RENEW if same_key else EnrollmentKind.REKEY,
            transaction_id=self._core_id(profile, row),
        )
        enrollment = replace(enrollment, replaces=CertificateRef(record.issuer, record.serial))
        decision = await self.core.decide(enrollment, replaced=record)
        # The same subject as the profile makes it, not as the CSR spells it: a device re-sends its
        # first CSR's subject, attributes the profile dropped included (micromdm's C=US).
        if decision.template.subject != request.signer.subject:
            raise bad_request("the CSR asks for another subject than the certificate being renewed")
        return await self._issue(profile, settings, row, decision, spki)

    # -- CertPoll ------------------------------------------------------------------------------
    async def cert_poll(self, profile: Profile, settings: ScepProfileSettings, request: ScepRequest) -> Certificates:
        """GetCertInitial: the state of an earlier PKCSReq/RenewalReq under the same transactionID."""
        try:
            IssuerAndSubject.load(request.content, strict=True).native  # noqa: B018 (parse it all)
        except Exception:
            raise bad_request("CertPoll content is not an IssuerAndSubject") from None
        now = self.core.clock.now()
        seen = await self.transactions.find(profile.name, request.transaction_id, now)
        if seen is None:  # a renewal's, polled with the certificate being renewed
            seen = await self.transactions.find(profile.name, renewal_row(request.signer, request.transaction_id), now)
        if seen is None:
            raise ScepFailure(FailInfo.BAD_CERT_ID, "no enrolment is known under this transactionID")
        return await self._resume(seen, spki_digest(request.signer.public_key()), profile, settings)

    # -- shared --------------------------------------------------------------------------------
    @staticmethod
    def _csr(request: ScepRequest, settings: ScepProfileSettings) -> x509.CertificateSigningRequest:
        return parse_scep_csr(request.content, legacy=settings.legacy)

    @staticmethod
    def _check_transaction_id(request: ScepRequest, csr: x509.CertificateSigningRequest) -> None:
        if not matches_key(request.transaction_id, csr.public_key()):
            raise bad_request("the transactionID is not a hash of the CSR's public key (RFC 8894 §3.2.1.1)")

    @staticmethod
    def _core_id(profile: Profile, row: str) -> str:
        return f"scep:{profile.name}:{hashlib.sha256(row.encode()).hexdigest()}"

    async def _issue(
        self,
        profile: Profile,
        settings: ScepProfileSettings,
        row: str,
        decision: Decision,
        spki: str,
    ) -> Certificates:
        """Claim the transactionID, then issue (or hold) what was decided (a refusal before this
        point stored nothing); a twin that claimed it first answers instead."""
        tid = row
        requester = decision.request.requester.name
        twin = await self.transactions.claim(profile.name, tid, spki, requester, self.core.clock.now())
        if twin is not None:
            return await self._resume(twin, spki, profile, settings)
        try:
            outcome = await self.core.enroll(decision, on_issued=self.transactions.issued(profile.name, tid))
        except Exception:  # refused or failed: the client may try again under the same id
            await self.transactions.release(profile.name, tid)
            raise
        if isinstance(outcome, Pending):
            await self.transactions.held(profile.name, tid, outcome.request_id)
        return self._certificates(outcome, settings)

    async def _resume(
        self, seen: Transaction, spki: str, profile: Profile, settings: ScepProfileSettings
    ) -> Certificates:
        if seen.spki_sha256 != spki:
            raise bad_request("this transactionID was used with another key")
        if seen.certificate_id is not None:
            record = await self.core.certificate(seen.certificate_id)
            if record is None or record.der is None:
                raise CAError("the certificate of this transaction cannot be read", FailureReason.INTERNAL)
            cert = x509.load_der_x509_certificate(record.der)
            return self._certificates(Issued(cert, self.core.chain(record.issuer), record.issuer, record.id), settings)
        if seen.request_id is not None:
            return self._certificates(await self.core.poll(seen.request_id), settings)
        return None  # a twin is issuing it right now: PENDING, the client polls

    @staticmethod
    def _certificates(outcome: EnrollmentOutcome, settings: ScepProfileSettings) -> Certificates:
        if isinstance(outcome, Pending):
            return None
        return (outcome.certificate, *outcome.chain) if settings.include_ca_certs else (outcome.certificate,)
