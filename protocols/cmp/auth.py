"""Who sent a CMP message, proven by its protection (RFC 9483 §3.2, §3.5), and how to answer it.

Two ways to prove it:

- MAC: the senderKID names a shared secret kept in the credential store (`tetra cmp secret
  add REF`); the MAC must verify under it (CMP-02). The reply is MAC'd with the same key.
- Signature: the first extraCerts certificate signed the message and is the sender. It is
  trusted when it is a valid, unrevoked certificate of this CA (it may then renew itself by
  kur and revoke itself by rr), when it chains to a configured device maker's CA
  ([cmp] trust_anchors: first enrolment with a factory certificate), or when it is a
  configured RA ([cmp] ra_senders, whose raVerified proof of possession is then accepted).
  Anything else is signerNotTrusted (CMP-04). The reply is signed by the CMP signing key.

A message without protection is refused (CMP-01): this server has no unauthenticated flow.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca.enrollment import AuthMethod, Requester
from ca.errors import CAError
from ca.interface import CoreApi
from ca.records import CertificateRecord
from protocols.cmp.config import CmpConfig
from protocols.cmp.der import explicit
from protocols.cmp.errors import CmpFailure, FailInfo, bad_message_check
from protocols.cmp.message import PkiMessage
from protocols.cmp.protection import MacKey, is_mac_protected, verify_mac, verify_signature_protection
from protocols.cmp.reply import MacProtection, SignatureProtection

PROTOCOL = "cmp"
MAX_CHAIN = 4  # intermediates between a device's certificate and its maker's anchor


@dataclass(frozen=True)
class Sender:
    """A proven sender. ``profile`` restricts a shared secret to one profile (None: any);
    ``record`` is the sender's certificate when this CA issued it."""

    requester: Requester
    reply_protection: MacProtection | SignatureProtection
    profile: str | None = None
    certificate: x509.Certificate | None = None
    record: CertificateRecord | None = None
    ra: bool = False

    @property
    def by_mac(self) -> bool:
        return isinstance(self.reply_protection, MacProtection)


def _valid_at(certificate: x509.Certificate, now: dt.datetime) -> bool:
    return certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc


def chains_to(
    certificate: x509.Certificate,
    anchors: tuple[x509.Certificate, ...],
    intermediates: tuple[x509.Certificate, ...],
    now: dt.datetime,
) -> bool:
    """Whether ``certificate`` chains to one of ``anchors`` through at most MAX_CHAIN of the
    ``intermediates`` the sender supplied, each signature verified and each link valid now."""
    current = certificate
    for _ in range(MAX_CHAIN + 1):
        if not _valid_at(current, now):
            return False
        for anchor in anchors:
            if _directly_issued(current, anchor) and _valid_at(anchor, now):
                return True
        parent = next((c for c in intermediates if c != current and _directly_issued(current, c)), None)
        if parent is None or not _is_ca(parent):
            return False
        current = parent
    return False


def _directly_issued(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    if certificate.issuer != issuer.subject:
        return False
    try:
        certificate.verify_directly_issued_by(issuer)
    except Exception:  # InvalidSignature, ValueError, TypeError (an unsupported key): not issued by it
        return False
    return True


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


class Authenticator:
    def __init__(self, core: CoreApi, config: CmpConfig, signing: SignatureProtection | None) -> None:
        self.core = core
        self.config = config
        self.signing = signing
        self._ra_senders = {cert.public_bytes(Encoding.DER) for cert in config.ra_senders}

    async def sender(self, message: PkiMessage) -> Sender:
        if message.protection is None or message.protection_alg is None:
            raise bad_message_check("the message carries no protection")  # CMP-01
        if is_mac_protected(message):
            return await self._mac_sender(message)
        return await self._signing_sender(message)

    async def _mac_sender(self, message: PkiMessage) -> Sender:
        kid = message.sender_kid
        reference = _reference(kid)
        credential = await self.core.credentials.get_mac_key(PROTOCOL, reference) if reference else None
        if credential is None or credential.secret is None:
            raise CmpFailure(FailInfo.signerNotTrusted, "no shared secret is known under this sender reference")
        key: MacKey = verify_mac(message, credential.secret, self.config.mac_limits)
        return Sender(
            Requester(f"cmp:{reference}", AuthMethod.SHARED_SECRET),
            MacProtection(key, kid),
            profile=credential.profile,
        )

    async def _signing_sender(self, message: PkiMessage) -> Sender:
        if self.signing is None:
            raise CmpFailure(FailInfo.signerNotTrusted, "this CA has no CMP signing key; use MAC protection")
        extra = message.extra_certs()
        if not extra:
            raise bad_message_check("a signed message must carry its certificate first in extraCerts")
        certificate = extra[0]
        verify_signature_protection(message, certificate)
        if message.sender_der != explicit(4, certificate.subject.public_bytes()):
            raise bad_message_check("the sender is not the subject of the protection certificate")  # CMP-04
        now = self.core.clock.now()
        der = certificate.public_bytes(Encoding.DER)
        if der in self._ra_senders and _valid_at(certificate, now):
            requester = Requester(f"cmp-ra:{certificate.subject.rfc4514_string()}", AuthMethod.CLIENT_CERTIFICATE)
            return Sender(requester, self.signing, certificate=certificate, ra=True)
        try:
            record = await self.core.authenticate_certificate(certificate)
        except CAError:
            record = None
        if record is not None:
            return Sender(self.core.renewal_requester(record), self.signing, certificate=certificate, record=record)
        if await self._revoked_here(certificate):
            raise CmpFailure(FailInfo.certRevoked, "the protection certificate is revoked")  # CMP-10
        if chains_to(certificate, self.config.trust_anchors, extra[1:], now):
            requester = Requester(f"cmp-device:{certificate.subject.rfc4514_string()}", AuthMethod.CLIENT_CERTIFICATE)
            return Sender(requester, self.signing, certificate=certificate)
        raise CmpFailure(FailInfo.signerNotTrusted, "the protection certificate is not trusted by this CA")  # CMP-04

    async def _revoked_here(self, certificate: x509.Certificate) -> bool:
        """A certificate this CA issued and revoked: certRevoked says more than 'not trusted'."""
        for issuer in self.core.issuer_names:
            if certificate.issuer != self.core.chain(issuer)[0].subject:
                continue
            record = await self.core.certificate_by_serial(issuer, certificate.serial_number)
            if record is not None and record.der == certificate.public_bytes(Encoding.DER):
                return record.status == "revoked"
        return False


def _reference(kid: bytes | None) -> str | None:
    """The senderKID as the text reference it was stored under (openssl's -ref is text)."""
    if not kid or len(kid) > 255:
        return None
    try:
        return kid.decode("utf-8")
    except UnicodeDecodeError:
        return None
