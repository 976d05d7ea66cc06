"""Who signs OCSP responses: a delegated responder certificate per issuing CA
(RFC 6960 §4.2.2.2, id-kp-OCSPSigning + id-pkix-ocsp-nocheck), or the CA key itself.

A delegated responder certificate goes through the issuer like any other
certificate (intent row, lint, audit) and is replaced while it still covers a
whole response validity, so no response ever outlives its signer's certificate.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from ca.enrollment import EnrollmentKind
from ca.issuer import Intent, Issuer
from ca.keys import KEY_SPECS, describe_public_key, generate_private_key
from ca.profiles.loader import parse_profile
from ca.profiles.model import Profile
from ca.profiles.policy import CertificateTemplate
from ca.revocation import ocsp_der
from ca.revocation.asn1 import public_key_bits
from ca.revocation.settings import OcspSettings, ResponderKeySettings
from ca.revocation.signing import algorithm_identifier, signature_hash
from ca.revocation.tables import ocsp_responders
from ca.service import CertificateAuthority
from ca.signers.base import Signer
from ca.signers.registry import open_signer
from ca.signers.software import SoftwareSigner
from ca.store.db import Tx

log = logging.getLogger("tetra.ocsp")

RESPONDER_PROFILE = "tetra-ocsp-responder"


@dataclass(frozen=True)
class ResponderIdentity:
    """Everything about the signer that goes into every response, encoded once."""

    issuer: str
    signer: Signer
    hash_alg: hashes.HashAlgorithm | None
    responder_id: bytes  # ResponderID byKey
    algorithm: bytes  # signatureAlgorithm
    certs: bytes  # certs field: the delegated certificate, or nothing when the CA signs
    not_after: dt.datetime  # no response may outlive this
    certificate: x509.Certificate | None


def make_identity(
    issuer: str, signer: Signer, certificate: x509.Certificate | None, not_after: dt.datetime
) -> ResponderIdentity:
    public = signer.public_key()
    hash_alg = signature_hash(public)
    certs = [certificate.public_bytes(Encoding.DER)] if certificate is not None else []
    return ResponderIdentity(
        issuer=issuer,
        signer=signer,
        hash_alg=hash_alg,
        responder_id=ocsp_der.responder_id_by_key(hashlib.sha1(public_key_bits(public)).digest()),
        algorithm=algorithm_identifier(public, hash_alg),
        certs=ocsp_der.certs_field(certs),
        not_after=not_after,
        certificate=certificate,
    )


def responder_profile(validity: dt.timedelta, *, cabf: bool = True) -> Profile:
    """cabf=False lints against RFC 5280 only: for a CA whose own subject has no country
    and no responder_country configured, BR 7.1.2.8 can not be met anyway."""
    days = max(1, -(-int(validity.total_seconds()) // 86400))
    return parse_profile(
        {
            "description": "Tetra's delegated OCSP responder (BR 7.1.2.8)",
            "protocols": ["cli"],
            "auth_methods": ["operator"],
            "lint": "pkilint",
            "lint_profile": "cabf-serverauth" if cabf else "pkix",
            "keys": {"allowed": list(KEY_SPECS)},
            "validity": {"default_days": days, "max_days": days},
            "names": {
                "san_types": ["dns"],
                "require_san": False,
                "common_name": "from-request",
                "subject_attributes": ["C", "O", "CN"],
            },
            "extensions": {"key_usage": ["digital_signature"], "extended_key_usage": ["OCSPSigning"]},
        },
        RESPONDER_PROFILE,
        "(built-in)",
    )


def responder_subject(ca_certificate: x509.Certificate, country: str) -> x509.Name:
    """C and O from the CA (BR 7.1.2.8.2 wants both), CN naming the CA it answers for."""
    subject = ca_certificate.subject
    countries = [str(a.value) for a in subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)]
    orgs = [str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    cns = [str(a.value) for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    attrs = []
    if countries or country:
        attrs.append(x509.NameAttribute(NameOID.COUNTRY_NAME, countries[0] if countries else country))
    if orgs:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, orgs[0]))
    cn = f"{cns[0] if cns else 'CA'} OCSP Responder"[:64]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def responder_template(issuer: Issuer, signer: Signer, settings: OcspSettings, now: dt.datetime) -> CertificateTemplate:
    not_before = now.replace(microsecond=0)
    not_after = min(not_before + settings.responder_validity - dt.timedelta(seconds=1), issuer.not_after)
    subject = responder_subject(issuer.certificate, settings.responder_country)
    has_country = bool(subject.get_attributes_for_oid(NameOID.COUNTRY_NAME))
    if not has_country:
        log.warning(
            "issuer %s: no country for the OCSP responder subject (set [ocsp] responder_country); "
            "linting it against RFC 5280 only",
            issuer.name,
        )
    return CertificateTemplate(
        profile=responder_profile(settings.responder_validity, cabf=has_country),
        issuer_name=issuer.name,
        subject=subject,
        public_key=signer.public_key(),
        subject_alt_names=(),
        not_before=not_before,
        not_after=not_after,
        key_usage=x509.KeyUsage(True, False, False, False, False, False, False, False, False),
        extended_key_usage=(ExtendedKeyUsageOID.OCSP_SIGNING,),
        kind=EnrollmentKind.NEW,
        replaces=None,
    )


class ResponderKeys:
    """Delegated responder keys: one made in this process per issuer (ephemeral), or one key
    shared by every process, opened through ca.signers.registry like the CA's own keys."""

    def __init__(self, settings: ResponderKeySettings) -> None:
        self.settings = settings
        self._signers: dict[str, Signer] = {}
        self._shared: Signer | None = None

    @property
    def shared(self) -> bool:
        """Whether other processes hold the same key (so they may reuse its certificate)."""
        return self.settings.signer is not None

    async def signer_for(self, issuer: Issuer) -> Signer:
        if self.settings.signer is None:
            if issuer.name not in self._signers:
                spec = self.settings.key_type or describe_public_key(issuer.certificate.public_key()).spec
                self._signers[issuer.name] = SoftwareSigner(f"ocsp-{issuer.name}", generate_private_key(spec))
            return self._signers[issuer.name]
        if self._shared is None:
            self._shared = await open_signer(self.settings.signer)
        return self._shared

    async def close(self) -> None:
        if self._shared is not None:
            await self._shared.close()


def _key_id(signer: Signer) -> str:
    spki = signer.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


class Responders:
    """The current responder identity per issuer, issued and rotated on demand."""

    def __init__(self, ca: CertificateAuthority, settings: OcspSettings, keys: ResponderKeys | None = None) -> None:
        self.ca = ca
        self.settings = settings
        self.keys = keys or ResponderKeys(settings.key)
        self._current: dict[str, ResponderIdentity] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def identity(self, issuer_name: str) -> ResponderIdentity:
        """A signer that can cover a full validity from now; issues a new certificate if not."""
        current = self._current.get(issuer_name)
        if current is not None and not self._due(current):
            return current
        lock = self._locks.setdefault(issuer_name, asyncio.Lock())
        async with lock:
            current = self._current.get(issuer_name)
            if current is None or self._due(current):
                current = await self._make(self.ca.issuers[issuer_name])
                self._current[issuer_name] = current
            return current

    def current(self, issuer_name: str) -> ResponderIdentity | None:
        """The identity `identity()` would return without waiting, or None when it must make one."""
        current = self._current.get(issuer_name)
        if current is None or self._due(current):
            return None
        return current

    def _due(self, identity: ResponderIdentity) -> bool:
        if identity.certificate is None:
            return False
        return identity.not_after - self.ca.clock.now() < self.settings.rotate_before

    async def rotate_due(self) -> list[str]:
        """Replace every responder certificate that is due; returns the issuers rotated."""
        rotated = []
        for name in self.ca.issuers:
            before = self._current.get(name)
            after = await self.identity(name)
            if before is not None and after is not before:
                rotated.append(name)
        return rotated

    async def _make(self, issuer: Issuer) -> ResponderIdentity:
        # A revoked or retired generation may not sign a new responder certificate, but its
        # leaves stay answered until they expire (CAL-02): its own key signs their responses.
        if self.settings.responder == "ca" or issuer.refusal() is not None:
            return make_identity(issuer.name, issuer.signer, None, issuer.not_after)
        signer = await self.keys.signer_for(issuer)
        now = self.ca.clock.now()
        if self.keys.shared:
            reused = await self._reusable(issuer.name, _key_id(signer), now)
            if reused is not None:
                return make_identity(issuer.name, signer, reused, reused.not_valid_after_utc)
        template = responder_template(issuer, signer, self.settings, now)
        certificate, row_id = await issuer.issue(template, Intent(protocol="ocsp", requester="tetra-ocsp"))
        der = certificate.public_bytes(Encoding.DER)
        values = {
            "issuer": issuer.name,
            "key_id": _key_id(signer),
            "certificate_id": row_id,
            "der": der,
            "not_before": certificate.not_valid_before_utc,
            "not_after": certificate.not_valid_after_utc,
            "created_at": now,
        }

        def record(tx: Tx) -> None:
            tx.conn.execute(insert(ocsp_responders).values(**values))
            # Rows only serve reuse by other processes; an expired certificate is never reused.
            expired = (ocsp_responders.c.issuer == issuer.name) & (ocsp_responders.c.not_after < now)
            tx.conn.execute(delete(ocsp_responders).where(expired))

        await self.ca.db.write(record)
        log.info(
            "issuer %s: new OCSP responder certificate %x until %s",
            issuer.name,
            certificate.serial_number,
            certificate.not_valid_after_utc.isoformat(),
        )
        return make_identity(issuer.name, signer, certificate, certificate.not_valid_after_utc)

    async def _reusable(self, issuer: str, key_id: str, now: dt.datetime) -> x509.Certificate | None:
        horizon = now + self.settings.rotate_before

        def q(conn: Connection) -> bytes | None:
            row = conn.execute(
                select(ocsp_responders.c.der)
                .where(
                    ocsp_responders.c.issuer == issuer,
                    ocsp_responders.c.key_id == key_id,
                    ocsp_responders.c.not_after > horizon,
                    ocsp_responders.c.not_before <= now,
                )
                .order_by(ocsp_responders.c.not_after.desc())
                .limit(1)
            ).first()
            return None if row is None else bytes(row.der)

        der = await self.ca.db.read(q)
        return None if der is None else x509.load_der_x509_certificate(der)

    async def close(self) -> None:
        await self.keys.close()
