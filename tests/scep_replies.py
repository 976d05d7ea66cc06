"""The reading side of tests/scep_client.py: CertRep (RFC 8894 §3.3.2) verified and opened.

Checks what §3.3.2 requires of every reply (RA signature, messageType CertRep, the request's
transactionID, recipientNonce = our senderNonce, a fresh senderNonce; content only on SUCCESS)
and raises AssertionError otherwise, so a test that reads a reply has checked it (SCEP-12).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from asn1crypto import cms, core
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.scep_cms import (
    CERT_REP,
    DIGESTS,
    FAILURE,
    OID_FAIL_INFO,
    OID_FAIL_INFO_TEXT,
    OID_MESSAGE_TYPE,
    OID_PKI_STATUS,
    OID_RECIPIENT_NONCE,
    OID_SENDER_NONCE,
    OID_TRANSACTION_ID,
    SUCCESS,
    decrypt,
)

if TYPE_CHECKING:
    from tests.scep_client import Message


@dataclass
class CertRep:
    """A verified CertRep (§3.3.2) and what its envelope held."""

    status: str
    fail_info: str | None
    fail_info_text: str | None
    transaction_id: str
    sender_nonce: bytes
    recipient_nonce: bytes
    signer: x509.Certificate
    certificates: list[x509.Certificate] = field(default_factory=list)
    crls: list[x509.CertificateRevocationList] = field(default_factory=list)
    cipher: str | None = None  # the content cipher of the reply's envelope

    @property
    def certificate(self) -> x509.Certificate:
        """The issued certificate: the one that is not a CA (the reply may carry the chain)."""
        leaves = [c for c in self.certificates if not is_ca(c)]
        assert len(leaves) == 1, f"expected one end-entity certificate, got {len(leaves)}"
        return leaves[0]


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _signed_attrs(signer_info: cms.SignerInfo) -> dict[str, core.Asn1Value]:
    return {a["type"].dotted: a["values"][0] for a in signer_info["signed_attrs"]}


def _text(value: core.Asn1Value) -> str:
    parsed = value.parsed if isinstance(value, core.Any) else value
    return str(parsed.native)


def _octets(value: core.Asn1Value) -> bytes:
    parsed = value.parsed if isinstance(value, core.Any) else value
    native = parsed.native
    assert isinstance(native, bytes)
    return native


def parse_cert_rep(der: bytes, sent: Message, key: rsa.RSAPrivateKey, ra_certificate: x509.Certificate) -> CertRep:
    """Verify a CertRep against the RA certificate and the message it answers, then decrypt
    its envelope with ``key``. AssertionError for anything §3.3.2 does not allow."""
    info = cms.ContentInfo.load(der)
    assert info["content_type"].native == "signed_data"
    signed = info["content"]
    (signer_info,) = signed["signer_infos"]
    sid = signer_info["sid"].chosen
    assert sid["serial_number"].native == ra_certificate.serial_number, "CertRep is not signed by the RA"
    attrs = signer_info["signed_attrs"]
    digest_name = signer_info["digest_algorithm"]["algorithm"].native
    public = ra_certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    signed_set = b"\x31" + attrs.dump()[1:]  # signed as SET OF, sent [0] IMPLICIT (RFC 5652 §5.4)
    public.verify(signer_info["signature"].native, signed_set, padding.PKCS1v15(), DIGESTS[digest_name]())
    content = signed["encap_content_info"]["content"].native or b""
    values = _signed_attrs(signer_info)
    assert hashlib.new(digest_name, content).digest() == _octets(values["1.2.840.113549.1.9.4"])
    assert _text(values[OID_MESSAGE_TYPE]) == CERT_REP
    reply = CertRep(
        status=_text(values[OID_PKI_STATUS]),
        fail_info=_text(values[OID_FAIL_INFO]) if OID_FAIL_INFO in values else None,
        fail_info_text=_text(values[OID_FAIL_INFO_TEXT]) if OID_FAIL_INFO_TEXT in values else None,
        transaction_id=_text(values[OID_TRANSACTION_ID]),
        sender_nonce=_octets(values[OID_SENDER_NONCE]),
        recipient_nonce=_octets(values[OID_RECIPIENT_NONCE]),
        signer=ra_certificate,
    )
    assert reply.transaction_id == sent.transaction_id, "CertRep transactionID differs"
    assert reply.recipient_nonce == sent.sender_nonce, "recipientNonce is not our senderNonce"
    assert len(reply.sender_nonce) == 16 and reply.sender_nonce != sent.sender_nonce
    if reply.status == SUCCESS:
        plain, reply.cipher = decrypt(content, key)
        degenerate = cms.ContentInfo.load(plain)["content"]
        for choice in degenerate["certificates"] or []:
            reply.certificates.append(x509.load_der_x509_certificate(choice.chosen.dump()))
        for choice in degenerate["crls"] or []:
            reply.crls.append(x509.load_der_x509_crl(choice.chosen.dump()))
    else:
        assert not content, "a FAILURE or PENDING CertRep carries no content"
        assert (reply.fail_info is not None) == (reply.status == FAILURE)
    return reply


def certs_only(der: bytes) -> list[x509.Certificate]:
    """The certificates of a degenerate PKCS#7 (GetCACert's application/x-x509-ca-ra-cert)."""
    signed = cms.ContentInfo.load(der)["content"]
    return [x509.load_der_x509_certificate(c.chosen.dump()) for c in signed["certificates"]]
