"""PROVISIONAL: a PKCSReq builder until tests/scep_client.py lands (branch scep-protocol)."""

from __future__ import annotations

import hashlib
import os

from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ca.cms import envelope, sign_data
from ca.cms.enveloped import ContentCipher
from ca.cms.scep import MessageType, read_scep_attributes, scep_attributes
from ca.cms.verify import parse_signed_data
from ca.signers.software import SoftwareSigner


def transaction_id(csr: x509.CertificateSigningRequest) -> str:
    spki = csr.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


async def pkcsreq(
    key: rsa.RSAPrivateKey, signer: x509.Certificate, csr: x509.CertificateSigningRequest, recipient: x509.Certificate
) -> bytes:
    inner = envelope(csr.public_bytes(serialization.Encoding.DER), recipient, cipher=ContentCipher.AES128_CBC)
    attrs = scep_attributes(
        message_type=MessageType.PKCS_REQ, transaction_id=transaction_id(csr), sender_nonce=os.urandom(16)
    )
    return await sign_data(SoftwareSigner("client", key), signer, inner, attributes=attrs)


def cert_rep_status(der: bytes) -> str:
    message = parse_signed_data(der, allow_sha1=True)
    return read_scep_attributes(message.signed_attributes).pki_status.name  # type: ignore[union-attr]


_ = cms
