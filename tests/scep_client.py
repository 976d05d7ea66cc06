"""A SCEP client for the tests and the benchmark: builds PKIMessages and reads CertReps.

Written independently of the server's code (asn1crypto for the structures, cryptography for
the primitives, synchronous, no Tetra module used) so that a test compares the server with a
second reading of RFC 8894, not with itself. Where the structures come from:

- PKIMessage: a CMS SignedData (RFC 5652 §5) whose one signer carries SCEP's signed attributes
  messageType, transactionID, senderNonce (and on replies recipientNonce, pkiStatus, failInfo,
  failInfoText) — RFC 8894 §3.2.1 and §3.2.1.2-§3.2.1.5; the encapsulated content is the
  pkcsPKIEnvelope, a CMS EnvelopedData (RFC 5652 §6) to the RA certificate (§3.2.2).
- The envelope holds, by message type (§3.3): PKCSReq and RenewalReq a PKCS#10 request
  (RFC 2986) with the challengePassword attribute (§3.3.1); CertPoll an IssuerAndSubject
  (§3.3.3); GetCert and GetCRL an IssuerAndSerialNumber (§3.3.4, §3.3.5).
- CertRep (§3.3.2): signed by the RA; on SUCCESS its envelope, addressed to the requester's
  signing certificate, holds a degenerate SignedData (certificates or a CRL only, §3.4).
- GET form (§4.1): ``operation=PKIOperation&message=<base64, URL-encoded>``.

The transactionID defaults to the hex SHA-256 of the key's SubjectPublicKeyInfo (§3.2.1.1 says
a hash of the public key, hex or base64 encoded).

This module builds messages; tests/scep_cms.py holds the codes, envelopes and signatures and
tests/scep_replies.py reads CertReps. Use all of it from here (``from tests import scep_client``):
everything public is re-exported, and these names stay stable for the interop and bench code.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from asn1crypto import cms, core, csr
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

# The codes and the reading side live in two modules of their own; tests use them from here.
from tests import helpers
from tests.scep_cms import (
    BAD_ALG,
    BAD_CERT_ID,
    BAD_MESSAGE_CHECK,
    BAD_REQUEST,
    BAD_TIME,
    CERT_POLL,
    CERT_REP,
    CIPHERS,
    CSR_SIGNATURE_OIDS,
    DIGESTS,
    FAILURE,
    GET_CERT,
    GET_CRL,
    OID_MESSAGE_TYPE,
    OID_SENDER_NONCE,
    OID_TRANSACTION_ID,
    PENDING,
    PKCS_REQ,
    RENEWAL_REQ,
    SUCCESS,
    attribute,
    decrypt,
    envelope,
    sign,
)
from tests.scep_replies import CertRep, certs_only, is_ca, parse_cert_rep

_is_ca = is_ca  # the name scep_client had first


def new_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """SCEP clients hold RSA keys: the CertRep envelope is encrypted to them (§3.2.2)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def self_signed(
    key: rsa.RSAPrivateKey, common_name: str = "scep-client", *, now: dt.datetime | None = None
) -> x509.Certificate:
    """The throw-away certificate a client signs PKCSReq with before it has one (§2.3), valid for a
    day around ``now`` (``now`` in the past: an expired one)."""
    return helpers.self_signed(common_name, key=key, now=now)[1]


def transaction_id(public_key: rsa.RSAPublicKey, form: str = "sha256-hex") -> str:
    """A transactionID derived from the key (§3.2.1.1). ``form``: sha256-hex (this client's
    default), md5-hex (sscep), rfc7093-base64 (micromdm scepclient 2.x: SHA-256 of the PKCS#1 key
    cut to 160 bits), sha1-base64 (older micromdm: SHA-1 of the PKCS#1 key)."""
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if form == "sha256-hex":
        return hashlib.sha256(spki).hexdigest().upper()
    if form == "md5-hex":
        return hashlib.md5(spki).hexdigest().upper()
    pkcs1 = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    if form == "rfc7093-base64":
        return base64.b64encode(hashlib.sha256(pkcs1).digest()[:20]).decode()
    if form == "sha1-base64":
        return base64.b64encode(hashlib.sha1(pkcs1).digest()).decode()
    raise ValueError(f"unknown transactionID form {form!r}")


def build_csr(
    key: rsa.RSAPrivateKey,
    common_name: str,
    sans: Sequence[str] = (),
    *,
    challenge: str | None = None,
    digest: str = "sha256",
    country: str | None = None,
) -> bytes:
    """A PKCS#10 request (DER) with the challengePassword attribute (§3.3.1) and DNS SANs;
    ``country`` adds C= to the subject (as micromdm's scepclient does, which profiles may drop).
    SHA-1 and MD5 signatures (legacy clients) are made here by hand: cryptography refuses them."""
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, country)] if country else []
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False)
    if challenge is not None:
        builder = builder.add_attribute(x509.oid.AttributeOID.CHALLENGE_PASSWORD, challenge.encode())
    der = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    if digest == "sha256":
        return der
    request = csr.CertificationRequest.load(der)
    info = request["certification_request_info"]
    signature = key.sign(info.dump(), padding.PKCS1v15(), DIGESTS[digest]())
    resigned = csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": {"algorithm": CSR_SIGNATURE_OIDS[digest], "parameters": core.Null()},
            "signature": signature,
        }
    )
    return bytes(resigned.dump())


def issuer_and_serial(issuer: x509.Name, serial: int) -> bytes:
    """IssuerAndSerialNumber (RFC 5652 §10.2.4): GetCert and GetCRL's content (§3.3.4, §3.3.5)."""
    value = cms.IssuerAndSerialNumber({"issuer": asn1_x509.Name.load(issuer.public_bytes()), "serial_number": serial})
    return bytes(value.dump())


class IssuerAndSubject(core.Sequence):  # type: ignore[misc]
    """CertPoll's content (§3.3.3)."""

    _fields: ClassVar[list[tuple[str, type[core.Asn1Value]]]] = [
        ("issuer", asn1_x509.Name),
        ("subject", asn1_x509.Name),
    ]


def issuer_and_subject(issuer: x509.Name, subject: x509.Name) -> bytes:
    value = IssuerAndSubject(
        {"issuer": asn1_x509.Name.load(issuer.public_bytes()), "subject": asn1_x509.Name.load(subject.public_bytes())}
    )
    return bytes(value.dump())


@dataclass
class Requester:
    """Who sends: the key, the certificate that signs (self-signed, or the one being renewed)."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @classmethod
    def fresh(cls, common_name: str = "scep-client", bits: int = 2048) -> Requester:
        key = new_key(bits)
        return cls(key, self_signed(key, common_name))

    def transaction_id(self, form: str = "sha256-hex") -> str:
        public = self.key.public_key()
        return transaction_id(public, form)


@dataclass
class Message:
    """One PKIMessage as sent, and what the reply must echo."""

    der: bytes
    message_type: str
    transaction_id: str
    sender_nonce: bytes


def pki_message(
    message_type: str,
    content: bytes,
    requester: Requester,
    ra_certificate: x509.Certificate,
    *,
    cipher: str = "aes256",
    digest: str = "sha256",
    transaction: str | None = None,
    nonce: bytes | None = None,
    bad_padding: bool = False,
) -> Message:
    """Any PKIMessage (§3.2): ``content`` enveloped to the RA, signed by the requester."""
    tid = transaction if transaction is not None else requester.transaction_id()
    sender_nonce = nonce if nonce is not None else os.urandom(16)
    attributes = [
        attribute(OID_MESSAGE_TYPE, core.PrintableString(message_type)),
        attribute(OID_TRANSACTION_ID, core.PrintableString(tid)),
        attribute(OID_SENDER_NONCE, core.OctetString(sender_nonce)),
    ]
    enveloped = envelope(content, ra_certificate, cipher, bad_padding=bad_padding)
    der = sign(enveloped, requester.key, requester.certificate, attributes, digest)
    return Message(der, message_type, tid, sender_nonce)


def pkcs_req(
    requester: Requester,
    ra_certificate: x509.Certificate,
    common_name: str,
    sans: Sequence[str] = (),
    *,
    challenge: str | None = None,
    csr_digest: str = "sha256",
    **options: object,
) -> Message:
    """PKCSReq (§3.3.1) for the requester's own key."""
    der = build_csr(requester.key, common_name, sans, challenge=challenge, digest=csr_digest)
    return pki_message(PKCS_REQ, der, requester, ra_certificate, **options)  # type: ignore[arg-type]


def renewal_req(
    requester: Requester,
    ra_certificate: x509.Certificate,
    new_key: rsa.RSAPrivateKey,
    common_name: str,
    sans: Sequence[str] = (),
    *,
    country: str | None = None,
    **options: object,
) -> Message:
    """RenewalReq (§3.3.1.2): a CSR for ``new_key`` (or the same key), signed with the current
    certificate (``requester.certificate``, Tetra-issued) and its key."""
    der = build_csr(new_key, common_name, sans, country=country)
    options.setdefault("transaction", transaction_id(new_key.public_key()))
    return pki_message(RENEWAL_REQ, der, requester, ra_certificate, **options)  # type: ignore[arg-type]


def cert_poll(
    requester: Requester, ra_certificate: x509.Certificate, issuer: x509.Name, subject: x509.Name, **options: object
) -> Message:
    """CertPoll / GetCertInitial (§3.3.3): same transactionID as the PKCSReq it polls for."""
    return pki_message(CERT_POLL, issuer_and_subject(issuer, subject), requester, ra_certificate, **options)  # type: ignore[arg-type]


def get_cert(
    requester: Requester, ra_certificate: x509.Certificate, issuer: x509.Name, serial: int, **options: object
) -> Message:
    return pki_message(GET_CERT, issuer_and_serial(issuer, serial), requester, ra_certificate, **options)  # type: ignore[arg-type]


def get_crl(
    requester: Requester, ra_certificate: x509.Certificate, issuer: x509.Name, serial: int, **options: object
) -> Message:
    return pki_message(GET_CRL, issuer_and_serial(issuer, serial), requester, ra_certificate, **options)  # type: ignore[arg-type]


def get_query(message: bytes, *, cisco: bool = False) -> str:
    """The query string of a GET PKIOperation (§4.1); ``cisco``: base64 broken into 64-character
    lines, as Cisco IOS sends it (%0A between lines)."""
    text = base64.b64encode(message).decode()
    if cisco:
        text = "\n".join(text[i : i + 64] for i in range(0, len(text), 64)) + "\n"
    return "operation=PKIOperation&message=" + urllib.parse.quote(text, safe="")


__all__ = [
    "BAD_ALG",
    "BAD_CERT_ID",
    "BAD_MESSAGE_CHECK",
    "BAD_REQUEST",
    "BAD_TIME",
    "CERT_POLL",
    "CERT_REP",
    "CIPHERS",
    "DIGESTS",
    "FAILURE",
    "GET_CERT",
    "GET_CRL",
    "PENDING",
    "PKCS_REQ",
    "RENEWAL_REQ",
    "SUCCESS",
    "CertRep",
    "IssuerAndSubject",
    "Message",
    "Requester",
    "build_csr",
    "cert_poll",
    "certs_only",
    "decrypt",
    "envelope",
    "get_cert",
    "get_crl",
    "get_query",
    "is_ca",
    "issuer_and_serial",
    "issuer_and_subject",
    "new_key",
    "parse_cert_rep",
    "pkcs_req",
    "pki_message",
    "renewal_req",
    "self_signed",
    "sign",
    "transaction_id",
]
