"""The SCEP service (RFC 8894 §4): one GET and one POST handler, ``operation=`` picks the rest.

Mounted at /scep and its aliases (/cgi-bin/pkiclient.exe, /certsrv/mscep/mscep.dll), with any
trailing path below the mount. The first path segment selects a profile when it is a label
(protocols/labels.py: /scep/device, /scep/device/pkiclient.exe); a lone trailing file name
(/scep/pkiclient.exe, Cisco's habit) or none selects [scep] default_profile. Anything else is a
404. What is a SCEP message gets a signed CertRep; what is not gets an HTTP 4xx (SCEP-22).
"""

from __future__ import annotations

import logging

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca.cms import certs_only, sign_data
from ca.cms.scep import MessageType
from ca.errors import CAError
from ca.interface import CoreApi, RegistrationAuthority
from ca.profiles.model import Profile
from ca.revocation.crl import CrlService
from protocols.base import ProtocolContext, Route, WireRequest, WireResponse
from protocols.labels import ProfileLabels
from protocols.lockout import FailedAttempts
from protocols.scep import queries, wire
from protocols.scep.challenge import ChallengeChecker
from protocols.scep.config import ScepConfig, ScepProfileSettings
from protocols.scep.enrol import Enroller
from protocols.scep.errors import NotScep, ScepFailure, bad_request, failure_for
from protocols.scep.reply import CertRepWriter
from protocols.scep.request import ScepRequest, open_message, read_header
from protocols.scep.transactions import TransactionStore

log = logging.getLogger("tetra.scep")

ROUTES = (
    Route("GET", "", "get"),
    Route("POST", "", "post"),
    Route("GET", "/{tail:.*}", "get"),
    Route("POST", "/{tail:.*}", "post"),
)
CAPABILITIES = ("POSTPKIOperation", "SHA-256", "SHA-512", "AES", "SCEPStandard", "Renewal", "GetNextCACert")
LEGACY_CAPABILITIES = ("DES3", "SHA-1")


def _registration_authority(core: CoreApi, config: ScepConfig) -> RegistrationAuthority | None:
    """The RA that opens envelopes and signs CertReps. [scep] ra names one (an unknown name stops
    the start); without a name, the only one. With none (or several and no name), SCEP still
    answers GetCACaps and GetCACert (the CA certificate alone) and refuses PKIOperation."""
    try:
        ra = core.ra(config.ra or None)
    except CAError:
        if config.ra:
            raise
        log.warning("scep: no RA to decrypt and sign (set [scep] ra or configure one [ra.<name>]); PKIOperation is off")
        return None
    _ = ra.decrypter  # an RA key that cannot decrypt is refused at start, not per request
    return ra


class ScepHandlers:
    def __init__(
        self,
        core: CoreApi,
        config: ScepConfig,
        labels: ProfileLabels,
        default_profile: str,
        crls: CrlService | None = None,
    ) -> None:
        self.core = core
        self.config = config
        self.labels = labels
        self.default_profile = config.default_profile or default_profile
        self.ra = _registration_authority(core, config)
        self.writer = CertRepWriter(self.ra) if self.ra is not None else None
        self.crls = crls
        guard = FailedAttempts(config.challenge_failures, config.challenge_window)
        webhooks = {s.webhook for s in config.profiles.values() if s.webhook is not None}
        self.challenges = ChallengeChecker(core, guard, webhooks)
        self.enroller = Enroller(core, TransactionStore(core.state), self.challenges)

    @classmethod
    def create(cls, ctx: ProtocolContext[ScepConfig]) -> ScepHandlers:
        return cls(ctx.core, ctx.config, ctx.labels, ctx.default_profile, ctx.revocation.crl)

    async def close(self) -> None:
        await self.challenges.close()

    # -- routing -------------------------------------------------------------------------------
    def _profile(self, req: WireRequest) -> Profile:
        segments = [s for s in req.path.split("/") if s]
        name: str | None = self.default_profile
        if segments:
            labelled = self.labels.profile(segments[0])
            if labelled is not None:
                name, segments = labelled, segments[1:]
            if len(segments) > 1 or (segments and "." not in segments[0]):
                raise NotScep(404, f"no SCEP profile for label {segments[0]!r}")
        profile = self.core.profiles.get(name) if name else None
        if profile is None or "scep" not in profile.protocols:
            raise NotScep(404, "no SCEP profile is selected by this path")
        return profile

    async def get(self, req: WireRequest) -> WireResponse:
        return await self._serve(req)

    async def post(self, req: WireRequest) -> WireResponse:
        return await self._serve(req)

    async def _serve(self, req: WireRequest) -> WireResponse:
        try:
            profile = self._profile(req)
            op = wire.operation(req)
            if op == "GetCACaps":
                return self._capabilities(self.config.settings(profile.name))
            if op == "GetCACert":
                return self._ca_certificates(profile)
            if op == "GetNextCACert":
                return await self._next_ca_certificate(profile)
            if op == "PKIOperation":
                return await self._pki_operation(profile, wire.pki_message(req, self.config.max_body), req.remote)
            raise NotScep(400, f"unknown operation {op[:64]!r}")
        except NotScep as exc:
            return wire.refusal(exc)

    # -- the operations ------------------------------------------------------------------------
    def _capabilities(self, settings: ScepProfileSettings) -> WireResponse:
        """GetCACaps (§3.5.2): one capability per line; DES3 and SHA-1 only on legacy profiles (SCEP-01)."""
        caps = CAPABILITIES + (LEGACY_CAPABILITIES if settings.legacy else ())
        return WireResponse(200, {"Content-Type": "text/plain"}, "\n".join(caps).encode() + b"\n")

    def _issuer_chain(self, profile: Profile) -> tuple[x509.Certificate, ...]:
        chain = self.core.chain(self.core.issuing_generation(profile.issuer or self.core.default_issuer))
        roots = [r for r in self.core.roots if r.subject == chain[-1].issuer and r not in chain]
        return (*chain, *roots)

    def _ca_certificates(self, profile: Profile) -> WireResponse:
        """GetCACert (§4.2.1): the RA certificate and the CA chain as a degenerate PKCS#7; the
        issuing CA's certificate alone (DER) when there is no RA."""
        chain = self._issuer_chain(profile)
        if self.ra is None:
            return WireResponse(200, {"Content-Type": wire.CA_CERT}, chain[0].public_bytes(Encoding.DER))
        body = certs_only([self.ra.certificate, *chain])
        return WireResponse(200, {"Content-Type": wire.CA_RA_CERT}, body)

    def _signing_ra(self) -> tuple[RegistrationAuthority, CertRepWriter]:
        if self.ra is None or self.writer is None:
            raise NotScep(503, "this server has no SCEP RA: PKIOperation and GetNextCACert are unavailable")
        return self.ra, self.writer

    async def _next_ca_certificate(self, profile: Profile) -> WireResponse:
        """GetNextCACert (§4.7, SCEP-19): the staged next CA certificate in a SignedData the RA
        signs, so a client can trust it through the RA it already knows. The signed content is a
        degenerate certs-only SignedData holding it (§4.7.1): sscep reads the certificates from
        there (and crashes on an empty content); the outer certificates carry it too."""
        following = self.core.next_certificate(self.core.issuing_generation(profile.issuer or self.core.default_issuer))
        if following is None:
            raise NotScep(404, "no CA rollover is pending")
        ra, _ = self._signing_ra()
        body = await sign_data(ra.signer, ra.certificate, certs_only([following]), certificates=[following])
        return WireResponse(200, {"Content-Type": wire.NEXT_CA_CERT}, body)

    async def _pki_operation(self, profile: Profile, der: bytes, address: str) -> WireResponse:
        ra, writer = self._signing_ra()
        settings = self.config.settings(profile.name)
        try:
            request = await open_message(der, ra, legacy=settings.legacy, max_bytes=self.config.max_body)
        except (ScepFailure, CAError) as exc:
            header = read_header(der, self.config.max_body)  # NotScep (HTTP 400) if it has none
            ids = (header.message_type, header.transaction_id, header.sender_nonce)
            return await self._refuse(writer, profile, address, ids, "sha256", exc)
        try:
            return await self._answer(writer, profile, settings, request, address)
        except (ScepFailure, CAError) as exc:
            ids = (request.message_type, request.transaction_id, request.sender_nonce)
            return await self._refuse(writer, profile, address, ids, request.digest, exc)

    async def _refuse(
        self,
        writer: CertRepWriter,
        profile: Profile,
        address: str,
        ids: tuple[MessageType, str, bytes | None],
        digest: str,
        exc: ScepFailure | CAError,
    ) -> WireResponse:
        """The CertRep FAILURE for a refused message (type, transactionID, senderNonce), logged."""
        message_type, transaction_id, sender_nonce = ids
        failure = failure_for(exc)
        log.info(
            "scep: %s from %s under profile %s refused (failInfo %s): %s",
            message_type.name,
            address or "?",
            profile.name,
            failure.fail_info.name,
            failure.text,
        )
        return await writer.failure(
            transaction_id=transaction_id,
            recipient_nonce=sender_nonce,
            digest=digest,
            fail_info=failure.fail_info,
            text=failure.text,
        )

    async def _answer(
        self, writer: CertRepWriter, profile: Profile, settings: ScepProfileSettings, request: ScepRequest, address: str
    ) -> WireResponse:
        kind = request.message_type
        crl: x509.CertificateRevocationList | None = None
        certificates: tuple[x509.Certificate, ...] | None = ()
        if kind is MessageType.GET_CRL:
            crl = await queries.get_crl(self.core, self.crls, request.content)
        elif kind is MessageType.PKCS_REQ:
            certificates = await self.enroller.pkcs_req(profile, settings, request, address)
        elif kind is MessageType.RENEWAL_REQ:
            certificates = await self.enroller.renewal_req(profile, settings, request)
        elif kind is MessageType.CERT_POLL:
            certificates = await self.enroller.cert_poll(profile, settings, request)
        elif kind is MessageType.GET_CERT:
            certificates = await queries.get_cert(self.core, request.content)
        else:
            raise bad_request(f"{kind.name} is not a request a CA answers")
        if certificates is None:  # held for approval, or a twin is issuing it: the client polls
            return await writer.pending(
                transaction_id=request.transaction_id, recipient_nonce=request.sender_nonce, digest=request.digest
            )
        return await writer.success(
            transaction_id=request.transaction_id,
            recipient_nonce=request.sender_nonce,
            digest=request.digest,
            cipher=request.cipher,
            recipient=request.signer,
            certificates=certificates,
            crl=crl,
        )
