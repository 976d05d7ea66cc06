"""Template -> signed certificate, with the intent written before the key signs.

The sequence for every certificate (docs/reliability.md, "The demands"):
  1. draw a 128-bit random serial;
  2. build the certificate once and sign it with a throwaway key of the same
     algorithm: this "lint certificate" has exactly the to-be-signed bytes of
     the real one (the signature algorithm identifier does not depend on the key);
  3. lint it if the profile asks; any error refuses issuance before the real key is used;
  4. store serial + TBS (status 'signing') and an audit event, durably;
  5. sign those same TBS bytes with the real key (through the Signer, off the loop),
     assemble the certificate, check its TBS is byte-identical and its signature verifies;
  6. store the result (status 'issued') and an audit event.
Signing the stored TBS bytes directly (instead of running the builder a second
time) makes step 5's TBS equal to the linted one by construction.

A crash between 4 and 6 leaves the row in 'signing'. OCSP never calls such a row good,
and the recovery job (ca/recovery.py) settles it once it is older than the signing grace:
it stores the certificate if this process still holds it (a result write that failed,
kept in `Issuer.unrecorded`), and otherwise revokes the serial.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
)
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID
from sqlalchemy.exc import IntegrityError

from ca import faults
from ca.audit import AuditEvent
from ca.der import assemble_certificate, certificate_parts
from ca.enrollment import InventoryFields
from ca.errors import (
    CAError,
    FailureReason,
    InternalError,
    IssuerRetired,
    IssuerUnavailable,
    PolicyViolation,
    RejectedValue,
    SignerUnavailable,
)
from ca.interface import ResultWrite
from ca.keys import SignatureHash, default_hash, describe_public_key, hash_by_name
from ca.placeholder_keys import placeholder_key
from ca.profiles.policy import CertificateTemplate
from ca.sigalg import sign_bytes, verify_bytes
from ca.signers.base import Signer
from ca.store.db import Database, Slot, Tx
from ca.store.repositories import CertificateRepository, serial_text
from ca.unrecorded import UnrecordedResults

log = logging.getLogger("tetra.issuer")

SERIAL_BYTES = 16  # 128 random bits; DER at most 17 octets with the sign octet (limit 20)
MAX_SERIAL_ATTEMPTS = 5


def new_serial() -> int:
    """128 bits from the CSPRNG, no fix-up: a positive INTEGER needs no masking (CORE-01)."""
    while True:
        serial = int.from_bytes(secrets.token_bytes(SERIAL_BYTES), "big")
        if serial:
            return serial


@dataclass(frozen=True)
class IssuerUrls:
    """URLs put into every certificate; '{issuer}' is replaced by the issuer name."""

    crl: str = ""
    ocsp: str = ""
    ca_issuers: str = ""

    def render(self, issuer: str) -> IssuerUrls:
        return IssuerUrls(*(u.replace("{issuer}", issuer) for u in (self.crl, self.ocsp, self.ca_issuers)))


_THROWAWAY: dict[str, CertificateIssuerPrivateKeyTypes] = {}


def throwaway_key(public: CertificateIssuerPublicKeyTypes) -> CertificateIssuerPrivateKeyTypes:
    """A process-wide key of the issuer key's algorithm, for lint certificates only.
    RSA-1024 suffices: the TBS never depends on the signing key's size."""
    if isinstance(public, ec.EllipticCurvePublicKey):
        tag = f"ec-{public.curve.name}"
        if tag not in _THROWAWAY:
            _THROWAWAY[tag] = ec.generate_private_key(type(public.curve)())
    elif isinstance(public, rsa.RSAPublicKey):
        tag = "rsa"
        if tag not in _THROWAWAY:
            _THROWAWAY[tag] = rsa.generate_private_key(65537, 1024)
    elif isinstance(public, ed25519.Ed25519PublicKey):
        tag = "ed25519"
        if tag not in _THROWAWAY:
            _THROWAWAY[tag] = ed25519.Ed25519PrivateKey.generate()
    else:
        raise InternalError(f"unsupported issuer key {type(public).__name__}")
    return _THROWAWAY[tag]


Linter = Callable[[bytes, str], list[str]]


@dataclass(frozen=True)
class Intent:
    """Who asks for a certificate and what it belongs to, besides its template: stored with the
    intent row, and carried by the IssuanceToken to the write that records the result."""

    protocol: str
    requester: str
    replaces_id: int | None = None
    request_id: int | None = None
    inventory: InventoryFields | None = None
    # The caller's state change that says "issued" (ACME: the order becomes valid): it runs in
    # the transaction that records the certificate, so both commit or neither does. Not run for
    # a refusal, a failed signature or a pending approval.
    on_issued: ResultWrite | None = None


@dataclass
class IssuanceToken:
    """A reserved serial whose intent (TBS, status 'signing') is durably stored: the right to
    have that TBS signed exactly once (CORE-05). Made by Issuer.prepare, spent by Issuer.sign."""

    issuer: str
    row_id: int
    serial: int
    tbs: bytes
    lint_certificate: x509.Certificate
    hash_alg: hashes.HashAlgorithm | None
    profile: str
    intent: Intent
    spent: bool = False


# Extensions that point to revocation status and the issuer (all but the AKI), per certificate.
PointerExtensions = Callable[[CertificateTemplate, int], list[tuple[x509.ExtensionType, bool]]]


def _intent_writer(values: dict[str, Any], event: AuditEvent) -> Callable[[Tx], Slot[int]]:
    def write(tx: Tx) -> Slot[int]:
        return CertificateRepository.insert_intent(tx, values, event)

    return write


class Issuer:
    """One issuing CA: its certificate, chain, signer and the URLs it stamps on leaves."""

    def __init__(
        self,
        name: str,
        certificate: x509.Certificate,
        chain: tuple[x509.Certificate, ...],
        signer: Signer,
        urls: IssuerUrls,
        db: Database,
        linter: Linter | None = None,
    ) -> None:
        self.name = name
        self.certificate = certificate
        self.chain = chain  # the issuing CA first, then intermediates; no root
        self.signer = signer
        self.urls = urls.render(name)
        self._db = db
        self._linter = linter
        self._public = signer.public_key()
        if self._public != certificate.public_key():
            raise CAError(f"issuer {name}: signer key does not match the CA certificate", FailureReason.INTERNAL)
        try:
            ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            self._aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
        except x509.ExtensionNotFound:
            self._aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(self._public)
        self._throwaway = throwaway_key(self._public)
        self._placeholder = placeholder_key(self._public)
        self._static_extensions = self._build_static_extensions()
        self._pointers: PointerExtensions | None = None
        self.signing_attempts = 0  # counted for tests ("nothing issued" = unchanged)
        # Set from the CA registry (ca/authorities): after retire_at, or once revoked, this
        # generation signs no certificate, whatever was decided before (CAL-02, CAL-06).
        self.retire_at: dt.datetime | None = None
        self.revoked = False
        self.unrecorded = UnrecordedResults()  # signed, result not stored: for ca/recovery.py

    def present(self, certificate: x509.Certificate) -> None:
        """Present another certificate for the same subject and key (a same-key rollover,
        ca/authorities/lineage.key_owner): leaves, CRLs and OCSP answers are unchanged, the chain
        handed out and the notAfter that caps leaves come from the new certificate."""
        if certificate.public_key() != self._public or certificate.subject != self.certificate.subject:
            raise InternalError(f"issuer {self.name}: a new certificate must keep the subject and the key")
        self.certificate = certificate
        self.chain = (certificate, *self.chain[1:])

    @property
    def not_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc

    def refusal(self) -> IssuerUnavailable | None:
        """Why this generation may not sign a certificate now (None: it may)."""
        now = self._db.clock.now()
        if self.revoked:
            return IssuerUnavailable(f"issuing CA {self.name} is revoked")
        if self.retire_at is not None and now >= self.retire_at:
            return IssuerRetired(f"issuing CA {self.name} was replaced at {self.retire_at:%Y-%m-%d %H:%M:%S} UTC")
        if now >= self.not_after:
            return IssuerUnavailable(f"issuing CA {self.name} expired at {self.not_after:%Y-%m-%d %H:%M:%S} UTC")
        return None

    def _build_static_extensions(self) -> list[tuple[x509.ExtensionType, bool]]:
        exts: list[tuple[x509.ExtensionType, bool]] = [(self._aki, False)]
        if self.urls.crl:
            point = x509.DistributionPoint([x509.UniformResourceIdentifier(self.urls.crl)], None, None, None)
            exts.append((x509.CRLDistributionPoints([point]), False))
        access = []
        if self.urls.ocsp:
            access.append(
                x509.AccessDescription(
                    AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(self.urls.ocsp)
                )
            )
        if self.urls.ca_issuers:
            access.append(
                x509.AccessDescription(
                    AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(self.urls.ca_issuers)
                )
            )
        if access:
            exts.append((x509.AuthorityInformationAccess(access), False))
        return exts

    def set_pointer_extensions(self, pointers: PointerExtensions | None) -> None:
        """Let revocation publishing choose CRL DP, Freshest CRL and AIA per certificate
        (a CRL partition is picked from the serial, RFC 5280 §4.2.1.13); None: the static ones."""
        self._pointers = pointers

    def hash_for(self, template: CertificateTemplate) -> SignatureHash | None:
        if isinstance(self._public, ed25519.Ed25519PublicKey):
            return None
        if template.profile.signature_hash:
            return hash_by_name(template.profile.signature_hash)
        return default_hash(self._public)

    def builder(self, template: CertificateTemplate, serial: int) -> x509.CertificateBuilder:
        """All extensions handed over at once (chained add_extension() copies the builder each time)."""
        pairs: list[tuple[x509.ExtensionType, bool]] = [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (template.key_usage, True),
        ]
        if template.extended_key_usage:
            pairs.append((x509.ExtendedKeyUsage(list(template.extended_key_usage)), False))
        if template.subject_alt_names:
            sans = [ident.to_general_name() for ident in template.subject_alt_names]
            # RFC 5280 §4.2.1.6: critical when the subject is empty.
            pairs.append((x509.SubjectAlternativeName(sans), len(template.subject) == 0))
        if template.profile.policies:
            policies = [x509.PolicyInformation(oid, None) for oid in template.profile.policies]
            pairs.append((x509.CertificatePolicies(policies), False))
        pairs.append((x509.SubjectKeyIdentifier.from_public_key(template.public_key), False))
        if self._pointers is not None:
            pairs += [(self._aki, False), *self._pointers(template, serial)]
        else:
            pairs += self._static_extensions
        return x509.CertificateBuilder(
            issuer_name=self.certificate.subject,
            subject_name=template.subject,
            public_key=template.public_key,
            serial_number=serial,
            not_valid_before=template.not_before,
            not_valid_after=template.not_after,
            extensions=[x509.Extension(ext.oid, critical, ext) for ext, critical in pairs],
        )

    def lint_certificate(self, template: CertificateTemplate, serial: int) -> x509.Certificate:
        """The throwaway-key twin of the certificate: same TBS, harmless signature.

        With a linter it is really signed (by a throwaway key); without one only
        its TBS is used, so a placeholder signature saves an asymmetric operation.
        """
        key = self._throwaway if template.profile.lint == "pkilint" else self._placeholder
        return self.builder(template, serial).sign(key, self.hash_for(template))

    async def issue(self, template: CertificateTemplate, intent: Intent) -> tuple[x509.Certificate, int]:
        """Sign one certificate; returns it with its store id. Raises CAError on refusal."""
        return await self.sign(await self.prepare(template, intent))

    async def prepare(self, template: CertificateTemplate, intent: Intent) -> IssuanceToken:
        """Steps 1-4: draw the serial, lint, store the intent. Nothing is signed yet."""
        hash_alg = self.hash_for(template)
        protocol, requester = intent.protocol, intent.requester
        inventory = intent.inventory or InventoryFields()
        desc = describe_public_key(template.public_key)
        for attempt in range(MAX_SERIAL_ATTEMPTS):
            serial = new_serial()
            faults.checkpoint("F1")
            lint_cert = self.lint_certificate(template, serial)
            if attempt == 0 and template.profile.lint == "pkilint":
                await self._lint(template, lint_cert)
            tbs = lint_cert.tbs_certificate_bytes
            now = self._db.clock.now()
            values: dict[str, Any] = {
                "issuer": self.name,
                "serial": serial_text(serial),
                "status": "signing",
                "subject": template.subject.rfc4514_string(),
                "sans": json.dumps([str(i) for i in template.subject_alt_names]),
                "not_before": template.not_before,
                "not_after": template.not_after,
                "key_algorithm": desc.spec,
                "key_size": desc.size,
                "profile": template.profile.name,
                "protocol": protocol,
                "requester": requester[:255],
                "tbs": tbs,
                "created_at": now,
                "replaces_id": intent.replaces_id,
                "request_id": intent.request_id,
                "owner": inventory.owner,
                "team": inventory.team,
                "application": inventory.application,
                "location": inventory.location,
            }
            event = AuditEvent(
                actor=requester,
                action="certificate.intent",
                target=f"{self.name}/{serial_text(serial)}",
                details={
                    "profile": template.profile.name,
                    "protocol": protocol,
                    "tbs_sha256": hashlib.sha256(tbs).hexdigest(),
                    "subject": values["subject"],
                    "sans": values["sans"],
                },
            )
            try:
                row_id = await self._db.write_grouped(_intent_writer(values, event))
            except IntegrityError:
                # CORE-02: a repeated serial; nothing was signed for it. Draw again.
                log.error("serial collision on %s; drawing a new serial", self.name)
                continue
            break
        else:
            raise InternalError(f"issuer {self.name}: could not reserve a unique serial")
        faults.checkpoint("F2")
        return IssuanceToken(self.name, row_id, serial, tbs, lint_cert, hash_alg, template.profile.name, intent)

    async def sign(self, token: IssuanceToken) -> tuple[x509.Certificate, int]:
        """Steps 5-6 for a prepared intent: sign its stored TBS once and record the result.

        A token is spent on first use, before the key is asked (CORE-05): a second call
        raises InternalError and never reaches the signer, whatever became of the first.
        """
        if token.issuer != self.name:
            raise InternalError(f"issuer {self.name}: token of issuer {token.issuer}")
        if token.spent:
            raise InternalError(f"issuer {self.name}: serial {serial_text(token.serial)} was already signed once")
        token.spent = True
        row_id, serial, requester = token.row_id, token.serial, token.intent.requester
        if (refusal := self.refusal()) is not None:
            await self._mark_failed(row_id, serial, requester, refusal.detail)
            raise refusal
        certificate = await self._sign_and_check(
            token.tbs, token.lint_certificate, token.hash_alg, row_id, serial, requester
        )
        faults.checkpoint("F3")
        der = certificate.public_bytes(Encoding.DER)
        fingerprint = hashlib.sha256(der).hexdigest()
        done = {
            "status": "issued",
            "der": der,
            "fingerprint": fingerprint,
            "issued_at": self._db.clock.now(),
        }
        issued_event = AuditEvent(
            actor=requester,
            action="certificate.issued",
            target=f"{self.name}/{serial_text(serial)}",
            details={"fingerprint": fingerprint, "profile": token.profile, "protocol": token.intent.protocol},
        )
        on_issued = token.intent.on_issued

        def record(tx: Tx) -> None:
            CertificateRepository.record_result(tx, row_id, done, issued_event)
            if on_issued is not None:
                on_issued(tx, row_id)

        try:
            await self._db.write_grouped(record)
        except (IntegrityError, RejectedValue) as exc:
            # ST-07: the store refused the result (a constraint, a trigger, a value it cannot
            # hold). Every value here is ours, so it is our failure, not the client's. The row
            # stays 'signing', so the serial stays revocable; recovery stores the certificate later.
            self.unrecorded.keep(row_id, der)
            why = exc.orig if isinstance(exc, IntegrityError) else type(exc.__cause__).__name__
            log.error("issuer %s: the store refused the result for serial %x: %s", self.name, serial, why)
            raise InternalError(f"issuer {self.name}: could not record certificate {serial_text(serial)}") from exc
        except CAError:
            self.unrecorded.keep(row_id, der)  # the store is away: recovery stores it when it is back
            raise
        faults.checkpoint("F4")
        return certificate, row_id

    async def _lint(self, template: CertificateTemplate, lint_cert: x509.Certificate) -> None:
        if self._linter is None:
            raise InternalError(f"profile {template.profile.name}: lint requested but no linter configured")
        der = lint_cert.public_bytes(Encoding.DER)
        linter = self._linter
        errors = await asyncio.get_running_loop().run_in_executor(
            None, lambda: linter(der, template.profile.lint_profile)
        )
        ignored = template.profile.lint_ignore
        errors = [e for e in errors if not any(f" {code} " in f" {e} " for code in ignored)]
        if errors:
            raise PolicyViolation(f"profile {template.profile.name}: lint: {'; '.join(errors[:5])}")

    async def _sign_and_check(
        self,
        tbs: bytes,
        lint_cert: x509.Certificate,
        hash_alg: hashes.HashAlgorithm | None,
        row_id: int,
        serial: int,
        requester: str,
    ) -> x509.Certificate:
        _, algorithm = certificate_parts(lint_cert.public_bytes(Encoding.DER))
        key = self.signer.private_key()
        self.signing_attempts += 1
        try:
            signature = await self.signer.run(lambda: sign_bytes(key, tbs, hash_alg))
            # CORE-11: a signature that does not verify is never released (checked here unless the
            # Signer already checks each one: needs_signature_check, ca/signers/base.py).
            if self.signer.needs_signature_check and not verify_bytes(self._public, signature, tbs, hash_alg):
                raise SignerUnavailable(f"issuer {self.name}: signature from {self.signer.name} does not verify")
            certificate = x509.load_der_x509_certificate(assemble_certificate(tbs, algorithm, signature))
            if certificate.tbs_certificate_bytes != tbs:  # CORE-04
                raise InternalError(f"issuer {self.name}: signed TBS differs from the stored intent")
        except CAError as exc:
            await self._mark_failed(row_id, serial, requester, exc.detail)
            raise
        except Exception as exc:
            log.exception("signing failed on %s", self.name)
            await self._mark_failed(row_id, serial, requester, type(exc).__name__)
            raise SignerUnavailable(f"issuer {self.name}: signing failed") from exc
        return certificate

    async def _mark_failed(self, row_id: int, serial: int, requester: str, why: str) -> None:
        event = AuditEvent(requester, "certificate.failed", f"{self.name}/{serial_text(serial)}", {"error": why})

        def w(tx: Tx) -> None:
            CertificateRepository.record_result(tx, row_id, {"status": "failed"}, event)

        try:
            await self._db.write_grouped(w)
        except CAError:
            # The row stays 'signing': treated as possibly issued, so still revocable.
            log.error("could not mark %s/%x failed", self.name, serial)
