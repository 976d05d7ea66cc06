"""The EST operations (RFC 7030 §4), each under /.well-known/est/ and /.well-known/est/<label>/.

A label selects a profile (protocols/labels.py; no label: [est] default_profile, else the
server's default). An unknown label, or a profile that does not allow EST, is a 404.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from cryptography import x509

from ca.csr import csr_identifiers, enrollment_from_csr, parse_csr
from ca.enrollment import CertificateRef, EnrollmentKind, EnrollmentOutcome, Pending
from ca.errors import CAError
from ca.interface import CoreApi
from ca.profiles.model import Profile
from ca.records import CertificateRecord
from protocols.base import ProtocolContext, Route, WireRequest, WireResponse
from protocols.est import codec
from protocols.est.auth import Client, authenticate
from protocols.est.config import EstConfig, EstProfileSettings
from protocols.est.csrattrs import csr_attributes
from protocols.est.errors import EstError, forbidden, not_found, not_implemented, render_error
from protocols.est.keygen import server_keygen_reply
from protocols.est.pending import PendingStore, csr_digest
from protocols.est.pop import check_linked
from protocols.labels import ProfileLabels
from protocols.lockout import FailedAttempts

OPERATIONS = (
    ("GET", "cacerts"),
    ("POST", "simpleenroll"),
    ("POST", "simplereenroll"),
    ("POST", "serverkeygen"),
    ("GET", "csrattrs"),
    ("POST", "fullcmc"),
)
ROUTES = tuple(Route(method, f"/{op}", op) for method, op in OPERATIONS) + tuple(
    Route(method, f"/{{label}}/{op}", op) for method, op in OPERATIONS
)


@dataclass(frozen=True)
class Enrolment:
    """One authenticated POST: the profile it is under, the client, the CSR as received."""

    profile: Profile
    settings: EstProfileSettings
    client: Client
    der: bytes
    csr: x509.CertificateSigningRequest


class EstHandlers:
    def __init__(self, core: CoreApi, config: EstConfig, labels: ProfileLabels, default_profile: str) -> None:
        self.core = core
        self.config = config
        self.labels = labels
        self.default_profile = config.default_profile or default_profile
        self.pending = PendingStore(core.state)
        self.failed_passwords = FailedAttempts(config.password_failures, config.password_window)

    @classmethod
    def create(cls, ctx: ProtocolContext[EstConfig]) -> EstHandlers:
        return cls(ctx.core, ctx.config, ctx.labels, ctx.default_profile)

    async def close(self) -> None:
        """Nothing to release."""

    # -- selection and authentication ------------------------------------------------------
    def _profile(self, req: WireRequest) -> Profile:
        label = req.match.get("label")
        name = self.labels.profile(label) if label else self.default_profile
        profile = self.core.profiles.get(name) if name else None
        if profile is None or "est" not in profile.protocols:
            shown = f"label {label!r}" if label else "the default label"
            raise not_found(f"no EST profile for {shown}")
        return profile

    async def _enrolment(self, req: WireRequest) -> Enrolment:
        profile = self._profile(req)
        settings = self.config.settings(profile.name)
        client = await authenticate(self.core, req, profile, settings, self.failed_passwords)
        der = codec.request_der(req)
        csr = parse_csr(der)
        if settings.pop_required:
            check_linked(csr, req.tls_unique)
        return Enrolment(profile, settings, client, der, csr)

    # -- the operations ---------------------------------------------------------------------
    async def cacerts(self, req: WireRequest) -> WireResponse:
        """The issuing CA's chain and its root (RFC 7030 §4.1), no authentication (EST-01); during
        a rollover also the staged next generation, and after a root rollover the new root with
        its link certificates newWithOld and oldWithNew (§4.1.3)."""
        try:
            profile = self._profile(req)
        except EstError as exc:
            return render_error(exc)
        issuer = self.core.issuing_generation(profile.issuer or self.core.default_issuer)
        chain = self.core.chain(issuer)
        roots = [r for r in self.core.roots if r.subject == chain[-1].issuer]
        following = self.core.next_certificate(issuer)
        update = self.core.root_update(issuer) or ()
        certificates = [*chain, *roots, *([following] if following else []), *update]
        return codec.certs_only_response(list(dict.fromkeys(certificates)))  # each once, in this order

    async def csrattrs(self, req: WireRequest) -> WireResponse:
        try:
            profile = self._profile(req)
        except EstError as exc:
            return render_error(exc)
        der = csr_attributes(profile, pop_required=self.config.settings(profile.name).pop_required)
        return WireResponse(200, codec.base64_part_headers(codec.CSRATTRS), codec.encode_base64(der))

    async def simpleenroll(self, req: WireRequest) -> WireResponse:
        try:
            e = await self._enrolment(req)
            return await self._enroll(e, EnrollmentKind.NEW, None)
        except (EstError, CAError) as exc:
            return render_error(exc)

    async def simplereenroll(self, req: WireRequest) -> WireResponse:
        """Renewal or rekey (RFC 7030 §4.2.2): only the certificate being replaced authenticates it,
        and the CSR keeps its subject and names (EST-05)."""
        try:
            e = await self._enrolment(req)
            record, cert = e.client.record, e.client.certificate
            if record is None or cert is None:
                raise forbidden("simplereenroll is authenticated by the TLS client certificate being renewed")
            if e.csr.subject != cert.subject:
                raise forbidden("the CSR's subject differs from the certificate being renewed")
            if sorted(map(str, csr_identifiers(e.csr))) != sorted(record.sans):
                raise forbidden("the CSR's subjectAltNames differ from the certificate being renewed")
            same_key = e.csr.public_key() == cert.public_key()
            kind = EnrollmentKind.RENEW if same_key else EnrollmentKind.REKEY
            renewing = Client(self.core.renewal_requester(record), cert, record)
            return await self._enroll(Enrolment(e.profile, e.settings, renewing, e.der, e.csr), kind, record)
        except (EstError, CAError) as exc:
            return render_error(exc)

    async def serverkeygen(self, req: WireRequest) -> WireResponse:
        try:
            e = await self._enrolment(req)
            request = enrollment_from_csr(
                e.csr, protocol="est", profile_name=e.profile.name, requester=e.client.requester
            )
            return await server_keygen_reply(self.core, e.profile, e.csr, request, e.client.certificate)
        except (EstError, CAError) as exc:
            return render_error(exc)

    async def fullcmc(self, req: WireRequest) -> WireResponse:
        return render_error(not_implemented("fullcmc is not implemented (RFC 7030 §4.3 makes it optional)"))

    # -- issuing or holding ------------------------------------------------------------------
    async def _enroll(self, e: Enrolment, kind: EnrollmentKind, replaced: CertificateRecord | None) -> WireResponse:
        digest = csr_digest(e.der)
        # Only a profile that holds requests can have one waiting; the others skip the lookup.
        held = await self.pending.request_for(e.profile.name, digest) if e.profile.approval != "auto" else None
        if held is not None:  # a retry of a request held for approval (EST-11)
            request_id, requester = held
            if requester != e.client.requester.name[:255]:
                raise forbidden("this CSR waits for approval on behalf of another client")
            return self._reply(await self.core.poll(request_id))
        request = enrollment_from_csr(
            e.csr,
            protocol="est",
            profile_name=e.profile.name,
            requester=e.client.requester,
            kind=kind,
            transaction_id=f"{e.profile.name}:{digest}",
        )
        if replaced is not None:
            request = replace(request, replaces=CertificateRef(replaced.issuer, replaced.serial))
        outcome = await self.core.enroll(await self.core.decide(request, replaced=replaced))
        if isinstance(outcome, Pending):
            now = self.core.clock.now()
            await self.pending.remember(e.profile.name, digest, outcome.request_id, e.client.requester.name, now)
        return self._reply(outcome)

    def _reply(self, outcome: EnrollmentOutcome) -> WireResponse:
        if isinstance(outcome, Pending):
            retry = min(outcome.retry_after, self.config.retry_after)  # [est] retry_after, or sooner
            return WireResponse(
                202,
                {"Retry-After": str(retry), "Content-Type": "text/plain; charset=utf-8"},
                f"request {outcome.request_id} is waiting for an operator's approval; retry after {retry} s\n".encode(),
            )
        return codec.certs_only_response([outcome.certificate])
