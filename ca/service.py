"""`CertificateAuthority`: the core behind the protocols' seam (ca/interface.py `CoreApi`).

decide (profile policy, once) -> enroll -> issuer (intent, sign, result) -> store + audit.
Pending approval, renewal lineage, server-side key generation and revocation all go
through here, whichever protocol carried the request. Protocols see only `CoreApi`;
the server, the CLI and the jobs may use the rest (repositories, issuers, signers).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ca import service_events
from ca.audit import AuditEvent
from ca.authorities import links as root_links
from ca.authorities.lineage import active_generation, families, group_retire_at, key_owner
from ca.authorities.model import Authority, Kind
from ca.authz import check_identifiers_proven
from ca.clock import Clock
from ca.credentials import CredentialStore
from ca.enrollment import (
    AuthMethod,
    EnrollmentOutcome,
    EnrollmentRequest,
    Identifier,
    Issued,
    Pending,
    Requester,
)
from ca.errors import (
    AlreadyRevoked,
    CAError,
    FailureReason,
    IssuerRetired,
    IssuerUnavailable,
    NotAuthorized,
    PolicyViolation,
    UnknownCertificate,
)
from ca.held_requests import request_from_record, request_to_json
from ca.interface import Decision, RegistrationAuthority, ResultWrite
from ca.inventory.scans import ScanStore
from ca.inventory.store import InventoryStore
from ca.issuer import Intent, Issuer
from ca.keys import generate_private_key
from ca.operators.plane import Operators
from ca.profiles.model import Profile
from ca.profiles.policy import CertificateTemplate, build_template
from ca.records import CertificateRecord, RequestRecord
from ca.revocation.reasons import parse_reason
from ca.sigalg import verify_bytes
from ca.state_store import StateDatabase
from ca.store.db import Database
from ca.store.repositories import AuditRepository, CertificateRepository, RequestRepository

log = logging.getLogger("tetra.ca")

IssuanceObserver = Callable[[str, str, float], None]  # protocol, profile, seconds
RevocationObserver = Callable[[CertificateRecord], None]


class CertificateAuthority:
    def __init__(
        self,
        db: Database,
        issuers: dict[str, Issuer],
        default_issuer: str,
        profiles: dict[str, Profile],
        roots: tuple[x509.Certificate, ...],
        *,
        ras: dict[str, RegistrationAuthority] | None = None,
        pending_retry_after: int = 60,
        next_certificates: dict[str, x509.Certificate] | None = None,
    ) -> None:
        if default_issuer not in issuers:
            raise CAError(f"default issuer {default_issuer!r} is not configured", FailureReason.INTERNAL)
        self.db = db
        self.issuers = issuers
        self.default_issuer = default_issuer
        self._profiles = dict(profiles)
        self.roots = roots
        self.ras = ras or {}
        self.next_certificates = next_certificates or {}  # staged rollover certificates, by issuer
        self.pending_retry_after = pending_retry_after
        self.certificates = CertificateRepository(db)
        self.requests = RequestRepository(db)
        self.audit = AuditRepository(db)
        self.credentials = CredentialStore(db)
        self.inventory = InventoryStore(db, own_cas=self.own_ca_certificates)
        self.scans = ScanStore(db)
        self.operators = Operators(db, db.clock)  # users, API tokens, dashboard sessions
        self.issuance_observers: list[IssuanceObserver] = []
        self.revocation_observers: list[RevocationObserver] = []
        self._own_keys = _own_keys(issuers, roots, self.ras)
        self.authorities: dict[str, Authority] = {}  # the CA registry as last read (ca/authorities)
        self._families: dict[str, list[Authority]] = {}
        self._owners: dict[str, str] = {}  # generation -> the issuer that signs for it (lineage.key_owner)
        self._roots_above: dict[str, Authority | None] = {}  # issuer -> registered root above its chain
        # Re-reads the registry (set by server/wiring.py; the server's watch job calls it).
        self.sync_registry: Callable[[], Awaitable[list[str]]] | None = None

    @property
    def clock(self) -> Clock:
        return self.db.clock

    @property
    def state(self) -> StateDatabase:
        """The protocols' own tables share the core's database (ca/state_store.py)."""
        return self.db

    @property
    def issuer_names(self) -> tuple[str, ...]:
        return tuple(self.issuers)

    @property
    def ca_names(self) -> frozenset[str]:
        """What a profile's ``issuer`` may name: a CA family, or one generation by its own name."""
        return frozenset(self.issuers) | frozenset(self._families)

    def issuing_generation(self, family: str) -> str:
        """The issuer name of the generation of CA ``family`` that issues now (EST cacerts, SCEP
        GetCACert, CMP genm answer with its chain)."""
        try:
            return self.current_issuer(family).name
        except IssuerUnavailable:
            return family if family in self.issuers else next(iter(self.issuers))

    def next_certificate(self, issuer: str) -> x509.Certificate | None:
        return self.staged_successor(issuer)

    def ra(self, name: str | None = None) -> RegistrationAuthority:
        if name is None and len(self.ras) == 1:
            return next(iter(self.ras.values()))
        if name is None:
            raise CAError(f"{len(self.ras)} RAs are configured; name one", FailureReason.INTERNAL)
        try:
            return self.ras[name]
        except KeyError:
            raise CAError(f"no RA named {name!r} is configured", FailureReason.INTERNAL) from None

    # -- profiles ---------------------------------------------------------------------
    @property
    def profiles(self) -> dict[str, Profile]:
        return self._profiles

    def reload_profiles(self, profiles: dict[str, Profile]) -> None:
        """Swap the whole set at once: an issuance in flight keeps the Profile it resolved (CORE-14)."""
        for profile in profiles.values():
            if profile.issuer and profile.issuer not in self.ca_names:
                raise CAError(f"profile {profile.name}: unknown issuer {profile.issuer!r}", FailureReason.INTERNAL)
        self._profiles = dict(profiles)

    def profile(self, name: str) -> Profile:
        try:
            return self._profiles[name]
        except KeyError:
            raise PolicyViolation(f"unknown profile {name!r}") from None

    def issuer_for(self, profile: Profile) -> Issuer:
        return self.current_issuer(profile.issuer or self.default_issuer)

    def current_issuer(self, family: str) -> Issuer:
        """The generation of CA ``family`` that issues now (ca/authorities/lineage.py). A CA built
        without a registry (tools, unit tests) issues from the issuer of that name."""
        generations = self._families.get(family)
        if not generations:
            issuer = self.issuers[family]
        else:
            active = active_generation(generations, self.clock.now())
            if active is None:
                raise IssuerUnavailable(f"issuing CA {family} has no active generation")
            if active.revoked_at is not None:
                raise IssuerUnavailable(f"issuing CA {active.name} is revoked; activate another generation")
            owner = self._owners.get(active.name, active.name)
            if owner not in self.issuers:
                raise IssuerUnavailable(f"issuing CA {active.name} is not loaded in this process yet")
            issuer = self.issuers[owner]
        if (refusal := issuer.refusal()) is not None and not isinstance(refusal, IssuerRetired):
            raise refusal
        return issuer

    def adopt(
        self, records: list[Authority], new_issuers: dict[str, Issuer], roots: tuple[x509.Certificate, ...]
    ) -> None:
        """Take the registry as just read: new generations' issuers, every generation's schedule
        and revocation, and the roots. Called at start-up and by the server's registry watch."""
        self.issuers = {**self.issuers, **new_issuers}
        self.roots = roots
        self.authorities = {a.name: a for a in records}
        grouped = families(records).items()
        self._families = {name: members for name, members in grouped if members[0].kind is Kind.ISSUING}
        now = self.clock.now()
        self._owners = {}
        for members in self._families.values():
            for record in members:
                self._owners[record.name] = key_owner(record, members)
            for name in {self._owners[m.name] for m in members} & set(self.issuers):
                issuer = self.issuers[name]
                # The certificate it presents: the newest started generation sharing its key.
                current = [m for m in members if self._owners[m.name] == name and m.der is not None]
                started = [m for m in current if m.activate_at is not None and m.activate_at <= now]
                shown = max(started, key=lambda m: (m.activate_at, m.generation), default=None)
                if shown is not None and shown.der != issuer.certificate.public_bytes(Encoding.DER):
                    issuer.present(shown.certificate)
                issuer.retire_at = group_retire_at(name, members)
                issuer.revoked = shown is not None and shown.revoked_at is not None
        self._own_keys = _own_keys(self.issuers, self.roots, self.ras)
        self._roots_above = {}

    def ca_certificate(self, name: str) -> x509.Certificate | None:
        """The certificate behind /ca/<name>.cer: the one an issuer presents now (for a same-key
        rollover, the newest), else a registered generation's own."""
        if name in self.issuers:
            return self.issuers[name].certificate
        record = self.authorities.get(name)
        return record.certificate if record is not None and record.der is not None else None

    def staged_successor(self, issuer: str) -> x509.Certificate | None:
        """The certificate of the next generation of ``issuer``'s CA, staged or scheduled but not yet
        issuing: what SCEP GetNextCACert and EST announce before a rollover."""
        record = self.authorities.get(issuer)
        if record is None:
            return self.next_certificates.get(issuer)
        now = self.clock.now()
        for later in self._families.get(record.family, ()):
            if later.generation > record.generation and later.der is not None and later.revoked_at is None:
                if later.activate_at is None or later.activate_at > now:
                    return later.certificate
        return self.next_certificates.get(issuer)

    # -- enrollment ---------------------------------------------------------------------
    async def decide(self, request: EnrollmentRequest, *, replaced: CertificateRecord | None = None) -> Decision:
        """Policy only: what would be issued, or the rule that refuses it (dry run, nothing stored).
        A refusal is logged here, where it is decided (ca/service_events.py)."""
        try:
            profile = self.profile(request.profile_name)
            if _spki(request.public_key) in self._own_keys:
                # CORE-12: a leaf for our own key would let its holder pass as the CA (or the RA).
                raise CAError("the certificate key is one of this CA's own keys (CA or RA)", FailureReason.BAD_CSR)
            check_identifiers_proven(request)
            issuer = self.issuer_for(profile)
            template = build_template(
                profile, request, issuer_name=issuer.name, issuer_not_after=issuer.not_after, now=self.clock.now()
            )
            return Decision(request, template, await self._replaced(request, replaced))
        except CAError as exc:
            service_events.refused(request, exc)
            raise

    async def enroll(self, decision: Decision, *, on_issued: ResultWrite | None = None) -> EnrollmentOutcome:
        request, template = decision.request, decision.template
        if template.profile.approval == "manual" and not _approves_itself(request):
            return await self._hold_for_approval(request, template)
        return await self._issue(decision, on_issued=on_issued)

    async def enroll_with_server_key(self, decision: Decision, key_spec: str) -> Issued:
        """EST serverkeygen: the CA makes the key pair; the private key goes back with the certificate.
        ``decision`` was made for a request carrying the key the client would have sent, or any
        placeholder key of the same kind: the policy is decided again for the generated key."""
        key = generate_private_key(key_spec)
        request = replace(decision.request, public_key=key.public_key())
        outcome = await self.enroll(await self.decide(request, replaced=decision.replaced))
        if not isinstance(outcome, Issued):
            raise PolicyViolation(f"profile {request.profile_name}: server key generation needs automatic approval")
        return replace(outcome, private_key=key)

    async def _replaced(self, request: EnrollmentRequest, known: CertificateRecord | None) -> CertificateRecord | None:
        """The record of the certificate the request replaces, read once (or the caller's copy)."""
        ref = request.replaces
        if ref is None:
            return None
        if known is not None and (known.issuer, known.serial) == (ref.issuer, ref.serial):
            return known
        record = await self.certificates.by_serial(ref.issuer, ref.serial)
        if record is None:
            raise UnknownCertificate(f"certificate to replace ({ref.serial:x}) is not ours")
        return record

    async def _issue(
        self, decision: Decision, *, request_id: int | None = None, on_issued: ResultWrite | None = None
    ) -> Issued:
        template, request = decision.template, decision.request
        issuer = self.issuers[template.issuer_name]
        started = time.perf_counter()
        intent = Intent(
            protocol=request.protocol,
            requester=request.requester.name,
            replaces_id=decision.replaced.id if decision.replaced else None,
            request_id=request_id,
            inventory=request.inventory,
            on_issued=on_issued,
        )
        try:
            try:
                certificate, row_id = await issuer.issue(template, intent)
            except IssuerRetired:
                # CAL-06: the generation changed between decision and signature; decide again.
                decision = await self.decide(request, replaced=decision.replaced)
                template, issuer = decision.template, self.issuers[decision.template.issuer_name]
                certificate, row_id = await issuer.issue(template, intent)
        except CAError as exc:  # the lint gate, the store, the signer
            service_events.refused(request, exc)
            raise
        service_events.issued(request, template, certificate)
        elapsed = time.perf_counter() - started
        for observe in self.issuance_observers:
            observe(request.protocol, template.profile.name, elapsed)
        return Issued(certificate, issuer.chain, issuer.name, row_id)

    # -- approval -----------------------------------------------------------------------
    async def _hold_for_approval(self, request: EnrollmentRequest, template: CertificateTemplate) -> Pending:
        if request.transaction_id:
            existing = await self.requests.by_transaction(request.protocol, request.transaction_id)
            if existing is not None and existing.status == "pending":
                return Pending(existing.id, self.pending_retry_after)  # EST-11: no second request
        values = {
            "status": "pending",
            "protocol": request.protocol,
            "profile": template.profile.name,
            "transaction_id": request.transaction_id,
            "requester": request.requester.name[:255],
            "request": json.dumps(request_to_json(request)),
            "public_key": request.public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo),
            "raw_request": request.raw_request,
            "subject": template.subject.rfc4514_string(),
            "sans": json.dumps([str(i) for i in template.subject_alt_names]),
            "created_at": self.clock.now(),
            "team": request.inventory.team,  # team-bound operators see (and decide) their teams' requests only
        }
        event = AuditEvent(
            request.requester.name,
            "request.pending",
            f"profile/{template.profile.name}",
            {"protocol": request.protocol, "sans": values["sans"]},
        )
        request_id = await self.requests.create(values, event)
        service_events.held(request, template, request_id)
        return Pending(request_id, self.pending_retry_after)

    async def approve(self, request_id: int, operator: str) -> Issued:
        record = await self._pending(request_id)
        request = request_from_record(record)
        decision = await self.decide(request)  # the profile as it is now
        event = AuditEvent(operator, "request.approved", f"request/{request_id}")
        now = self.clock.now()
        won = await self.db.write(
            lambda tx: RequestRepository.decide(
                tx, request_id, {"status": "approved", "decided_at": now, "decided_by": operator}, event
            )
        )
        if not won:
            raise CAError(f"request {request_id} was decided meanwhile", FailureReason.MALFORMED)
        service_events.approved(record, operator)
        # The request points at its certificate in the transaction that records it.
        link = RequestRepository.link_certificate(request_id)
        return await self._issue(decision, request_id=request_id, on_issued=link)

    async def reject(self, request_id: int, operator: str, note: str = "") -> None:
        record = await self._pending(request_id)
        event = AuditEvent(operator, "request.rejected", f"request/{request_id}", {"note": note})
        now = self.clock.now()
        won = await self.db.write(
            lambda tx: RequestRepository.decide(
                tx,
                request_id,
                {"status": "rejected", "decided_at": now, "decided_by": operator, "decision_note": note},
                event,
            )
        )
        if not won:
            raise CAError(f"request {request_id} was decided meanwhile", FailureReason.MALFORMED)
        service_events.rejected(record, operator, note)

    async def _pending(self, request_id: int) -> RequestRecord:
        record = await self.requests.get(request_id)
        if record is None:
            raise CAError(f"no enrollment request {request_id}", FailureReason.MALFORMED)
        if record.status != "pending":
            raise CAError(f"request {request_id} is already {record.status}", FailureReason.MALFORMED)
        return record

    async def poll(self, request_id: int) -> EnrollmentOutcome:
        """What became of a pending request: still Pending, Issued, or refused (raised)."""
        record = await self.requests.get(request_id)
        if record is None:
            raise CAError(f"no enrollment request {request_id}", FailureReason.MALFORMED)
        if record.status == "pending":
            return Pending(record.id, self.pending_retry_after)
        if record.status == "rejected":
            raise PolicyViolation(f"request {request_id} was rejected: {record.decision_note or 'by an operator'}")
        if record.certificate_id is None:
            return Pending(record.id, 5)  # approved, issuance under way
        cert = await self.certificates.get(record.certificate_id)
        if cert is None or cert.der is None:
            return Pending(record.id, 5)
        return Issued(x509.load_der_x509_certificate(cert.der), self.issuers[cert.issuer].chain, cert.issuer, cert.id)

    # -- renewal ------------------------------------------------------------------------
    async def authenticate_certificate(self, certificate: x509.Certificate) -> CertificateRecord:
        """A certificate presented as proof (renewal, TLS client auth): ours, valid, not revoked."""
        issuer = self._issuer_of(certificate)
        now = self.clock.now()
        if not (certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc):
            raise NotAuthorized("the presented certificate is expired or not yet valid")
        record = await self.certificates.by_serial(issuer.name, certificate.serial_number)
        if record is None or record.der != certificate.public_bytes(Encoding.DER):
            raise NotAuthorized("the presented certificate was not issued by this CA")
        if record.status == "revoked":
            raise NotAuthorized("the presented certificate is revoked")
        if record.status != "issued":
            raise NotAuthorized(f"the presented certificate is {record.status}")
        return record

    def renewal_requester(self, record: CertificateRecord, name: str | None = None) -> Requester:
        """A requester proven by a certificate: it may ask again for exactly that certificate's names."""
        idents = frozenset(Identifier.parse(s) for s in record.sans)
        return Requester(name or f"cert:{record.issuer}/{record.serial_hex}", AuthMethod.CLIENT_CERTIFICATE, idents)

    def _issuer_of(self, certificate: x509.Certificate) -> Issuer:
        for issuer in self.issuers.values():
            if certificate.issuer != issuer.certificate.subject:
                continue
            params = certificate.signature_hash_algorithm
            if verify_bytes(
                issuer.signer.public_key(), certificate.signature, certificate.tbs_certificate_bytes, params
            ):
                return issuer
        raise NotAuthorized("the presented certificate was not issued by this CA")

    # -- revocation -----------------------------------------------------------------------
    async def revoke(
        self,
        issuer: str,
        serial: int,
        reason: str | int,
        *,
        requester: str,
        revoked_at: dt.datetime | None = None,
        invalidity_date: dt.datetime | None = None,
    ) -> CertificateRecord:
        reason_name = parse_reason(reason)
        record = await self.certificates.by_serial(issuer, serial)
        if record is None:
            raise UnknownCertificate(f"no certificate with serial {serial:x} from issuer {issuer}")
        if record.status == "revoked":
            raise AlreadyRevoked(f"certificate {serial:x} is already revoked")
        if record.status == "failed":
            raise UnknownCertificate(f"certificate {serial:x} was never signed")
        at = revoked_at or self.clock.now()
        event = AuditEvent(
            requester,
            "certificate.revoked",
            f"{issuer}/{record.serial_hex}",
            {"reason": reason_name, "revoked_at": at.isoformat()},
        )
        if not await self.certificates.revoke(
            record.id, reason=reason_name, revoked_at=at, invalidity_date=invalidity_date, event=event
        ):
            raise AlreadyRevoked(f"certificate {serial:x} is already revoked")
        revoked = await self.certificates.get(record.id)
        assert revoked is not None
        service_events.revoked(revoked, requester)
        for observe in self.revocation_observers:
            observe(revoked)
        return revoked

    async def certificate(self, record_id: int) -> CertificateRecord | None:
        return await self.certificates.get(record_id)

    async def certificate_by_serial(self, issuer: str, serial: int) -> CertificateRecord | None:
        return await self.certificates.by_serial(issuer, serial)

    async def find_by_serial(self, serial: int, issuer: str | None = None) -> CertificateRecord:
        if issuer:
            record = await self.certificates.by_serial(issuer, serial)
            matches = [record] if record else []
        else:
            matches = await self.certificates.by_serial_any_issuer(serial)
        if not matches:
            raise UnknownCertificate(f"no certificate with serial {serial:x}")
        if len(matches) > 1:
            raise CAError(f"serial {serial:x} exists under several issuers; name the issuer", FailureReason.MALFORMED)
        return matches[0]

    # -- chains -------------------------------------------------------------------------
    def chain(self, issuer: str) -> tuple[x509.Certificate, ...]:
        return self.issuers[issuer].chain

    def _root_above(self, issuer: str) -> Authority | None:
        if issuer not in self.issuers:
            return None
        if issuer not in self._roots_above:  # a signature check: once per issuer and registry read
            self._roots_above[issuer] = root_links.root_above(self.chain(issuer)[-1], self.authorities.values())
        return self._roots_above[issuer]

    def root_update(self, issuer: str, old_root: x509.Certificate | None = None) -> root_links.RootUpdate | None:
        values = self.authorities.values()
        root = self._root_above(issuer) if old_root is None else root_links.registered_root(old_root, values)
        return root_links.root_update(root, self.authorities.values()) if root is not None else None

    def alternate_chains(self, issuer: str) -> list[tuple[x509.Certificate, ...]]:
        root = self._root_above(issuer)
        return root_links.alternate_chains(self.chain(issuer), root, self.root_update(issuer)) if root else []

    def own_ca_certificates(self) -> list[x509.Certificate]:
        """This CA's own certificates, for the inventory (PCI DSS's "trusted keys and
        certificates"): the roots, every CA generation and link certificate, and the RAs'."""
        ras = [ra.certificate for ra in self.ras.values()]
        return [*self.roots, *self.intermediates(), *ras]

    def intermediates(self) -> list[x509.Certificate]:
        """Every CA certificate below the roots, once each (for /intermediates.pem and TLS trust):
        every generation not revoked, and the link certificates of a root rollover, so a client
        that trusts either root finds a path (RFC 4210 §4.4)."""
        roots = {r.fingerprint(hashes.SHA256()) for r in self.roots}
        found: dict[bytes, x509.Certificate] = {}
        links = [c for a in self.authorities.values() if a.kind is Kind.ROOT and a.revoked_at is None for c in a.links]
        chains = [issuer.chain for issuer in self.issuers.values() if not issuer.revoked]
        # Every certified generation, also one that shares its issuer's key (a same-key rollover:
        # staged, or retired while its leaves are still valid).
        generations = [
            a.certificate
            for a in self.authorities.values()
            if a.kind is Kind.ISSUING and a.der is not None and a.revoked_at is None
        ]
        for chain in [*chains, generations, links]:
            for cert in chain:
                fingerprint = cert.fingerprint(hashes.SHA256())
                if fingerprint not in roots:
                    found.setdefault(fingerprint, cert)
        return list(found.values())

    async def close(self) -> None:
        closed: set[int] = set()
        for signer in [i.signer for i in self.issuers.values()] + [ra.signer for ra in self.ras.values()]:
            if id(signer) not in closed:
                closed.add(id(signer))
                await signer.close()
        await self.db.close()


def _approves_itself(request: EnrollmentRequest) -> bool:
    """An operator at the CA's own `tetra` command holds the keys and could approve anyway: its
    requests are issued at once. A user of the management API is not an approver by asking,
    so its requests on a manual profile wait in the queue like any protocol's."""
    return request.requester.method is AuthMethod.OPERATOR and request.protocol == "cli"


def _spki(key: CertificatePublicKeyTypes) -> bytes:
    return bytes(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))


def _own_keys(
    issuers: dict[str, Issuer], roots: tuple[x509.Certificate, ...], ras: dict[str, RegistrationAuthority]
) -> frozenset[bytes]:
    """The public keys no certificate may carry: every CA in the issuers' chains, the roots, the RAs."""
    certificates = [c for i in issuers.values() for c in (i.certificate, *i.chain)]
    certificates += [*roots, *(ra.certificate for ra in ras.values())]
    return frozenset(_spki(c.public_key()) for c in certificates)
