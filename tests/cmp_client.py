"""An in-process CMP client (RFC 9810, RFC 4211, RFC 9483) for tests and the benchmark: it BUILDS
request PKIMessages and PARSES replies, and sends nothing itself (callers choose the transport).

Every request is assembled from DER pieces (protocols.cmp.der, ca.der), so a test can break any
field: the header fields are a `Header` (``dataclasses.replace`` one field), the body is DER a
test may swap, and `protect` takes the protection explicitly (`Mac`, `Signature`, or None for an
unprotected message) plus an optional forged protection value. MAC keys come from
protocols.cmp.pbm (the server's own derivation); replies are decoded by
protocols.cmp.message.decode_message and summarised by `read_reply` (status, failInfo names,
certificate, caPubs, checkAfter), their protection checked by protocols.cmp.protection.

Defaults follow OpenSSL 3.0's `openssl cmp`: pvno 2, a 16-octet transactionID and senderNonce,
PasswordBasedMac with SHA-256 as OWF, 500 iterations and HMAC-SHA-1, certReqId 0, signature POP
over the DER of certRequest, certHash with the certificate's own signature hash.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pyasn1.codec.der import encoder as der_encoder
from pyasn1_alt_modules import rfc4211

from ca.der import oid, tlv
from ca.sigalg import HASH_OIDS, sign_bytes
from protocols.cmp.bodies import PkiStatus
from protocols.cmp.config import MacLimits
from protocols.cmp.der import algorithm_identifier, bit_string, explicit, integer, octet_string, read_tlv, sequence
from protocols.cmp.errors import FailInfo
from protocols.cmp.message import ID_IT_IMPLICIT_CONFIRM, PkiMessage, decode_message
from protocols.cmp.pbm import DERIVATION, HMAC_SHA1, PASSWORD_BASED_MAC, pbmac1_algorithm
from protocols.cmp.protection import signature_algorithm, verify_mac, verify_signature_protection

# PKIBody CHOICE tags (RFC 9810 §5.1.2) of the bodies a client sends
BODY_TAGS = {"ir": 0, "cr": 2, "p10cr": 4, "kur": 7, "krr": 9, "rr": 11, "ccr": 13, "genm": 21, "certConf": 24}
BODY_TAGS |= {"pollReq": 25, "ip": 1, "error": 23, "pkiconf": 19}  # server-only ones, for tests to send wrongly
ID_REGCTRL_OLD_CERT_ID = str(rfc4211.id_regCtrl_oldCertID)
REASON_CODE = "2.5.29.21"
NONCE_OCTETS = 16
NULL_NAME = x509.Name([])


# -- protection --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mac:
    """MAC protection with a shared secret under sender reference ``reference`` (senderKID).
    ``scheme`` "pbm": PasswordBasedMac as OpenSSL 3.0 makes it (OWF ``owf``, HMAC-``mac``);
    "pbmac1": PBMAC1 with PBKDF2-HMAC-SHA256 and HMAC-SHA256 (RFC 9481 §6.1.1)."""

    reference: bytes
    secret: bytes
    scheme: str = "pbm"
    iterations: int = 500
    salt: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    owf: str = "sha256"
    mac: str = "sha1"

    def algorithm(self) -> bytes:
        """protectionAlg (DER)."""
        if self.scheme == "pbmac1":
            return pbmac1_algorithm(self.salt, self.iterations)
        mac_oid = HMAC_SHA1 if self.mac == "sha1" else {"sha256": "1.2.840.113549.2.9"}[self.mac]
        params = sequence(
            octet_string(self.salt),
            algorithm_identifier(HASH_OIDS[self.owf]),
            integer(self.iterations),
            algorithm_identifier(mac_oid),
        )
        return algorithm_identifier(PASSWORD_BASED_MAC, params)

    def value(self, protected_part: bytes) -> bytes:
        """The MAC over ``protected_part`` (RFC 9810 §5.1.3.1; PBMAC1: RFC 8018 §7.1)."""
        if self.scheme == "pbmac1":
            key = DERIVATION.pbkdf2("sha256", self.secret, self.salt, self.iterations, 32)
            return hmac.new(key, protected_part, "sha256").digest()
        key = DERIVATION.owf_iterated(self.owf, self.secret, self.salt, self.iterations)
        return hmac.new(key, protected_part, self.mac).digest()


@dataclass(frozen=True)
class Signature:
    """Signature protection by ``key``, whose certificate (first in extraCerts, RFC 9483 §3.3)
    is ``certificate``, followed by ``chain``; the sender is the certificate's subject."""

    key: CertificateIssuerPrivateKeyTypes
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()
    hash_name: str = "sha256"

    def algorithm(self) -> bytes:
        return signature_algorithm(self.key.public_key(), self.hash_name)[0]

    def value(self, protected_part: bytes) -> bytes:
        _, hash_alg = signature_algorithm(self.key.public_key(), self.hash_name)
        return sign_bytes(self.key, protected_part, hash_alg)

    def sender_kid(self) -> bytes | None:
        try:
            return self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except x509.ExtensionNotFound:
            return None


Protection = Mac | Signature | None


# -- header ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    """PKIHeader fields (RFC 9810 §5.1.1). None omits an optional field; ``sender`` None means
    the protection's natural sender (the certificate's subject, or the empty name for MAC);
    ``sender_kid`` None the protection's natural one (the reference, or the certificate's SKI)."""

    transaction_id: bytes = field(default_factory=lambda: secrets.token_bytes(NONCE_OCTETS))
    sender_nonce: bytes = field(default_factory=lambda: secrets.token_bytes(NONCE_OCTETS))
    recip_nonce: bytes | None = None
    message_time: dt.datetime | None = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    pvno: int = 2
    sender: x509.Name | None = None
    recipient: x509.Name = NULL_NAME
    sender_kid: bytes | None = None
    implicit_confirm: bool = False

    def fresh(self) -> Header:
        """The same header with a new senderNonce and messageTime (the next message of a transaction)."""
        return dataclasses.replace(
            self, sender_nonce=secrets.token_bytes(NONCE_OCTETS), message_time=dt.datetime.now(dt.UTC)
        )

    def der(self, protection: Protection, algorithm: bytes | None) -> bytes:
        sender, kid = self.sender, self.sender_kid
        if isinstance(protection, Signature):
            sender = sender if sender is not None else protection.certificate.subject
            kid = kid if kid is not None else protection.sender_kid()
        elif isinstance(protection, Mac):
            kid = kid if kid is not None else protection.reference
        fields = [
            integer(self.pvno),
            directory_name(sender if sender is not None else NULL_NAME),
            directory_name(self.recipient),
        ]
        if self.message_time is not None:
            when = self.message_time.astimezone(dt.UTC).strftime("%Y%m%d%H%M%SZ").encode()
            fields.append(explicit(0, tlv(0x18, when)))
        if algorithm is not None:
            fields.append(explicit(1, algorithm))
        if kid is not None:
            fields.append(explicit(2, octet_string(kid)))
        fields.append(explicit(4, octet_string(self.transaction_id)))
        fields.append(explicit(5, octet_string(self.sender_nonce)))
        if self.recip_nonce is not None:
            fields.append(explicit(6, octet_string(self.recip_nonce)))
        if self.implicit_confirm:
            fields.append(explicit(8, sequence(sequence(oid(ID_IT_IMPLICIT_CONFIRM), b"\x05\x00"))))
        return sequence(*fields)


def directory_name(name: x509.Name) -> bytes:
    """GeneralName directoryName [4] (EXPLICIT: Name is a CHOICE)."""
    return explicit(4, name.public_bytes())


def protect(header: Header, body: bytes, protection: Protection, *, forged: bytes | None = None) -> bytes:
    """The PKIMessage: header, body, the protection over both (``forged`` replaces its value),
    extraCerts for a signature. With ``protection`` None the message is unprotected."""
    algorithm = protection.algorithm() if protection is not None else None
    header_der = header.der(protection, algorithm)
    if protection is None:
        return sequence(header_der, body)
    value = forged if forged is not None else protection.value(sequence(header_der, body))
    parts = [header_der, body, explicit(0, bit_string(value))]
    if isinstance(protection, Signature):
        certs = (protection.certificate, *protection.chain)
        parts.append(explicit(1, sequence(*(c.public_bytes(Encoding.DER) for c in certs))))
    return sequence(*parts)


# -- bodies ------------------------------------------------------------------------------------


def body(kind: str, content: bytes) -> bytes:
    """PKIBody: ``content`` under the CHOICE tag of ``kind`` (EXPLICIT)."""
    return explicit(BODY_TAGS[kind], content)


def extension(oid_dotted: str, value: bytes, critical: bool = False) -> bytes:
    return sequence(oid(oid_dotted), b"\x01\x01\xff" if critical else b"", octet_string(value))


def san_extension(names: Sequence[str]) -> bytes:
    """subjectAltName with dNSName entries."""
    ext = x509.SubjectAlternativeName([x509.DNSName(n) for n in names])
    return extension("2.5.29.17", ext.public_bytes())


def cert_template(
    key: Any,
    subject: x509.Name | None,
    sans: Sequence[str] = (),
    *,
    extensions: Sequence[bytes] = (),
) -> bytes:
    """CertTemplate (RFC 4211 §5, IMPLICIT tags): subject [5], publicKey [6], extensions [9]."""
    parts = []
    if subject is not None:
        parts.append(explicit(5, subject.public_bytes()))  # Name is a CHOICE: the tag stays explicit
    if key is not None:
        spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        parts.append(b"\xa6" + spki[1:])  # [6] IMPLICIT SubjectPublicKeyInfo
    exts = [*([san_extension(sans)] if sans else []), *extensions]
    if exts:
        parts.append(tlv(0xA9, *exts))  # [9] IMPLICIT Extensions
    return sequence(*parts)


def old_cert_id(certificate: x509.Certificate) -> bytes:
    """The oldCertID control (RFC 4211 §6.5) naming the certificate a kur updates."""
    cert_id = sequence(directory_name(certificate.issuer), integer(certificate.serial_number))
    return sequence(oid(ID_REGCTRL_OLD_CERT_ID), cert_id)


def pop_signature(key: Any, cert_request: bytes, hash_name: str = "sha256") -> bytes:
    """ProofOfPossession signature [1] (POPOSigningKey without poposkInput) over certRequest."""
    algorithm, hash_alg = signature_algorithm(key.public_key(), hash_name)
    return tlv(0xA1, algorithm, bit_string(sign_bytes(key, cert_request, hash_alg)))


RA_VERIFIED = b"\x80\x00"  # ProofOfPossession raVerified [0] NULL


def cert_req_msg(
    key: Any,
    subject: x509.Name | None,
    sans: Sequence[str] = (),
    *,
    cert_req_id: int = 0,
    controls: Sequence[bytes] = (),
    extensions: Sequence[bytes] = (),
    pop: bytes | None = None,
    pop_key: Any = None,
    with_pop: bool = True,
) -> bytes:
    """CertReqMsg: certRequest for ``key`` and a signature POP by ``pop_key`` (default ``key``);
    ``pop`` replaces the POP's DER (e.g. RA_VERIFIED); ``with_pop`` False omits it (badPOP)."""
    parts = [integer(cert_req_id), cert_template(key, subject, sans, extensions=extensions)]
    if controls:
        parts.append(sequence(*controls))
    cert_request = sequence(*parts)
    if not with_pop:
        return sequence(cert_request)
    return sequence(cert_request, pop if pop is not None else pop_signature(pop_key or key, cert_request))


def cert_req_body(kind: str, *messages: bytes) -> bytes:
    """ir, cr or kur: CertReqMessages."""
    return body(kind, sequence(*messages))


def p10cr_body(csr: x509.CertificateSigningRequest | bytes) -> bytes:
    der = csr if isinstance(csr, bytes) else csr.public_bytes(Encoding.DER)
    return body("p10cr", der)


def rr_body(certificate: x509.Certificate, reason: x509.ReasonFlags | None = x509.ReasonFlags.unspecified) -> bytes:
    """rr: one RevDetails naming the certificate by serialNumber [1] and issuer [3] (IMPLICIT),
    with a reasonCode CRL entry extension unless ``reason`` is None."""
    serial = integer(certificate.serial_number)
    details = sequence(b"\x81" + serial[1:], tlv(0xA3, certificate.issuer.public_bytes()))  # in tag order
    entry = b""
    if reason is not None:
        code = x509.CRLReason(reason).public_bytes()  # ENUMERATED
        entry = sequence(extension(REASON_CODE, code))
    return body("rr", sequence(sequence(details, entry)))


def cert_hash(certificate: x509.Certificate) -> bytes:
    """certHash (RFC 9810 §5.3.18): the hash the certificate's signature uses (SHA-512 for
    EdDSA, RFC 9481 §2), over the DER certificate."""
    algorithm = certificate.signature_hash_algorithm
    name = algorithm.name if algorithm is not None else "sha512"
    return hashlib.new(name, certificate.public_bytes(Encoding.DER)).digest()


def cert_conf_body(
    certificate: x509.Certificate | None,
    cert_req_id: int = 0,
    *,
    digest: bytes | None = None,
    rejected: str | None = None,
) -> bytes:
    """certConf for one certificate (``digest`` replaces its certHash); ``rejected`` sends status
    rejection with that text instead of accepting it; ``certificate`` None: an empty certConf."""
    if certificate is None and digest is None:
        return body("certConf", sequence())
    value = digest if digest is not None else cert_hash(certificate)  # type: ignore[arg-type]
    parts = [octet_string(value), integer(cert_req_id)]
    if rejected is not None:
        parts.append(sequence(integer(PkiStatus.rejection), sequence(tlv(0x0C, rejected.encode()))))
    return body("certConf", sequence(sequence(*parts)))


def poll_req_body(cert_req_id: int = 0) -> bytes:
    return body("pollReq", sequence(sequence(integer(cert_req_id))))


def itav(info_type: str, value: bytes | None = None) -> bytes:
    """InfoTypeAndValue; ``value`` is DER, None for an absent infoValue."""
    return sequence(oid(info_type), value or b"")


def genm_body(*itavs: bytes) -> bytes:
    return body("genm", sequence(*itavs))


# -- a client: the usual messages with one protection ----------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    """A built request and what its reply must echo."""

    der: bytes
    header: Header
    kind: str
    cert_req_id: int = 0


@dataclass
class Client:
    """Builds the usual requests with ``protection`` (None: unprotected) to ``recipient``."""

    protection: Protection
    recipient: x509.Name = NULL_NAME

    def header(self, **fields: Any) -> Header:
        return Header(recipient=self.recipient, **fields)

    def message(self, kind: str, content: bytes, header: Header | None = None, cert_req_id: int = 0) -> Outgoing:
        """Any body: ``content`` is the PKIBody (see `body`)."""
        header = header or self.header()
        return Outgoing(protect(header, content, self.protection), header, kind, cert_req_id)

    def enrol(
        self,
        kind: str,
        key: Any,
        subject: x509.Name | None,
        sans: Sequence[str] = (),
        *,
        header: Header | None = None,
        implicit_confirm: bool = False,
        **msg: Any,
    ) -> Outgoing:
        """ir / cr / kur (``msg``: cert_req_msg's options, e.g. controls=[old_cert_id(cert)])."""
        header = header or self.header(implicit_confirm=implicit_confirm)
        cert_req_id = int(msg.get("cert_req_id", 0))
        return self.message(kind, cert_req_body(kind, cert_req_msg(key, subject, sans, **msg)), header, cert_req_id)

    def ir(self, key: Any, subject: x509.Name | None, sans: Sequence[str] = (), **options: Any) -> Outgoing:
        return self.enrol("ir", key, subject, sans, **options)

    def cr(self, key: Any, subject: x509.Name | None, sans: Sequence[str] = (), **options: Any) -> Outgoing:
        return self.enrol("cr", key, subject, sans, **options)

    def kur(self, key: Any, old: x509.Certificate, subject: x509.Name | None = None, **options: Any) -> Outgoing:
        """kur for a new ``key``, naming ``old`` in oldCertID (sign it with ``old``'s key: RFC 9483 §4.1.3)."""
        return self.enrol("kur", key, subject or old.subject, controls=[old_cert_id(old)], **options)

    def p10cr(self, csr: x509.CertificateSigningRequest | bytes, *, implicit_confirm: bool = False) -> Outgoing:
        return self.message("p10cr", p10cr_body(csr), self.header(implicit_confirm=implicit_confirm), -1)

    def rr(
        self, certificate: x509.Certificate, reason: x509.ReasonFlags | None = x509.ReasonFlags.unspecified
    ) -> Outgoing:
        return self.message("rr", rr_body(certificate, reason))

    def genm(self, *itavs: bytes) -> Outgoing:
        return self.message("genm", genm_body(*itavs))

    def follow_up(self, request: Outgoing, reply: Reply) -> Header:
        """The header of the next message in ``request``'s transaction: same transactionID,
        a fresh senderNonce, recipNonce = the reply's senderNonce."""
        return dataclasses.replace(
            request.header.fresh(), recip_nonce=reply.message.sender_nonce, implicit_confirm=False
        )

    def cert_conf(self, request: Outgoing, reply: Reply, **options: Any) -> Outgoing:
        """certConf for the certificate in ``reply`` (``options``: cert_conf_body's)."""
        content = cert_conf_body(reply.certificate, request.cert_req_id, **options)
        return self.message("certConf", content, self.follow_up(request, reply), request.cert_req_id)

    def poll_req(self, request: Outgoing, reply: Reply) -> Outgoing:
        return self.message("pollReq", poll_req_body(request.cert_req_id), self.follow_up(request, reply))


# -- replies -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What a test asks of a reply; ``message`` is the full decoded view."""

    message: PkiMessage
    kind: str
    status: PkiStatus | None
    fail_info: tuple[str, ...]
    text: str
    certificate: x509.Certificate | None
    ca_pubs: tuple[x509.Certificate, ...]
    check_after: int | None
    cert_req_id: int | None


def _status(info: Any) -> tuple[PkiStatus, tuple[str, ...], str]:
    bits = info["failInfo"]
    names = tuple(FailInfo(i).name for i, bit in enumerate(bits) if bit) if bits.isValue else ()
    text = " / ".join(str(s) for s in info["statusString"]) if info["statusString"].isValue else ""
    return PkiStatus(int(info["status"])), names, text


def _cert(value: Any) -> x509.Certificate:
    """A CMPCertificate; pyasn1 encodes certOrEncCert's [0] with it, which is dropped."""
    der = der_encoder.encode(value)
    if der[0] == 0xA0:
        der = read_tlv(der, 0, len(der)).inner(der)
    return x509.load_der_x509_certificate(der)


def read_reply(der: bytes) -> Reply:
    """Decode a reply and lift out status, failInfo names, certificate, caPubs and checkAfter
    (protection not checked: see `check_protection`)."""
    message = decode_message(der)
    kind, content = message.body_type, message.body[message.body_type]
    status: PkiStatus | None = None
    fail: tuple[str, ...] = ()
    text = ""
    cert: x509.Certificate | None = None
    pubs: tuple[x509.Certificate, ...] = ()
    check_after: int | None = None
    req_id: int | None = None
    if kind in ("ip", "cp", "kup"):
        response = content["response"][0]
        req_id = int(response["certReqId"])
        status, fail, text = _status(response["status"])
        pair = response["certifiedKeyPair"]
        if pair.isValue:
            cert = _cert(pair["certOrEncCert"]["certificate"])
        if content["caPubs"].isValue:
            pubs = tuple(_cert(c) for c in content["caPubs"])
    elif kind == "error":
        status, fail, text = _status(content["pKIStatusInfo"])
    elif kind == "rp":
        status, fail, text = _status(content["status"][0])
    elif kind == "pollRep":
        req_id, check_after = int(content[0]["certReqId"]), int(content[0]["checkAfter"])
    return Reply(message, kind, status, fail, text, cert, pubs, check_after, req_id)


def check_protection(
    reply: Reply,
    protection: Protection,
    *,
    trusted: x509.Certificate | None = None,
    mac_limits: MacLimits | None = None,
) -> None:
    """Check ``reply``'s protection as the client that sent with ``protection`` would: with the
    same secret for MAC, else the signature by its first extraCert (which must equal ``trusted``
    when given). Raises protocols.cmp.errors.CmpFailure when it does not verify."""
    message = reply.message
    if isinstance(protection, Mac):
        verify_mac(message, protection.secret, mac_limits or MacLimits())
        return
    signer = message.extra_certs()[0]
    if trusted is not None and signer != trusted:
        raise AssertionError(f"the reply is signed by {signer.subject.rfc4514_string()}, not the expected certificate")
    verify_signature_protection(message, signer)
