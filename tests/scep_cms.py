"""The CMS side of tests/scep_client.py: SCEP's OIDs and codes, envelopes, signatures.

RFC 8894 §3.2.1 for the attributes, RFC 5652 §5 (SignedData) and §6 (EnvelopedData) for the
structures; asn1crypto and cryptography only, no Tetra module (see tests/scep_client.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Sequence

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# RFC 8894 §3.2.1 (the VeriSign arc) and §3.2.1.4 (failInfoText).
OID_MESSAGE_TYPE = "2.16.840.1.113733.1.9.2"
OID_PKI_STATUS = "2.16.840.1.113733.1.9.3"
OID_FAIL_INFO = "2.16.840.1.113733.1.9.4"
OID_SENDER_NONCE = "2.16.840.1.113733.1.9.5"
OID_RECIPIENT_NONCE = "2.16.840.1.113733.1.9.6"
OID_TRANSACTION_ID = "2.16.840.1.113733.1.9.7"
OID_FAIL_INFO_TEXT = "1.3.6.1.5.5.7.24.1"

# messageType values (§3.2.1.2)
CERT_REP, RENEWAL_REQ, PKCS_REQ, CERT_POLL, GET_CERT, GET_CRL = "3", "17", "19", "20", "21", "22"
# pkiStatus (§3.2.1.3) and failInfo (§3.2.1.4) values
SUCCESS, FAILURE, PENDING = "0", "2", "3"
BAD_ALG, BAD_MESSAGE_CHECK, BAD_REQUEST, BAD_TIME, BAD_CERT_ID = "0", "1", "2", "3", "4"

CIPHERS = {  # name -> (OID, key bytes, block bytes)
    "aes128": ("2.16.840.1.101.3.4.1.2", 16, 16),
    "aes192": ("2.16.840.1.101.3.4.1.22", 24, 16),
    "aes256": ("2.16.840.1.101.3.4.1.42", 32, 16),
    "des3": ("1.2.840.113549.3.7", 24, 8),
    "des": ("1.3.14.3.2.7", 8, 8),
}
CIPHER_BY_OID = {oid: (name, key, block) for name, (oid, key, block) in CIPHERS.items()}
DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha512": hashes.SHA512,
    "sha1": hashes.SHA1,
    "md5": hashes.MD5,
}
DIGEST_OIDS = {
    "sha256": "2.16.840.1.101.3.4.2.1",
    "sha512": "2.16.840.1.101.3.4.2.3",
    "sha1": "1.3.14.3.2.26",
    "md5": "1.2.840.113549.2.5",
}
# sha*WithRSAEncryption / md5WithRSAEncryption for the CSR's own signature (RFC 8017 App. C)
CSR_SIGNATURE_OIDS = {
    "sha256": "1.2.840.113549.1.1.11",
    "sha512": "1.2.840.113549.1.1.13",
    "sha1": "1.2.840.113549.1.1.5",
    "md5": "1.2.840.113549.1.1.4",
}


def asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def envelope(
    content: bytes, recipient: x509.Certificate, cipher: str = "aes256", *, bad_padding: bool = False
) -> bytes:
    """pkcsPKIEnvelope (§3.2.2): EnvelopedData, KeyTransRecipientInfo with RSA PKCS#1 v1.5.
    ``bad_padding``: the plaintext's last block ends in 0x00, which no PKCS#7 padding does (a
    recipient that decrypts it must refuse it, every time)."""
    oid, key_bytes, block = CIPHERS[cipher]
    key, iv = os.urandom(key_bytes), os.urandom(block)
    if bad_padding:
        padded = content + b"\x00" * (block - len(content) % block)
    else:
        padder = sym_padding.PKCS7(block * 8).padder()
        padded = padder.update(content) + padder.finalize()
    encryptor = Cipher(cipher_algorithm(cipher, key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    public = recipient.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    asn1 = asn1_cert(recipient)
    ktri = cms.KeyTransRecipientInfo(
        {
            "version": "v0",
            "rid": cms.RecipientIdentifier(
                name="issuer_and_serial_number",
                value={"issuer": asn1.issuer, "serial_number": asn1.serial_number},
            ),
            "key_encryption_algorithm": {"algorithm": "rsaes_pkcs1v15"},
            "encrypted_key": public.encrypt(key, padding.PKCS1v15()),
        }
    )
    enveloped = cms.EnvelopedData(
        {
            "version": "v0",
            "recipient_infos": [cms.RecipientInfo(name="ktri", value=ktri)],
            "encrypted_content_info": {
                "content_type": "data",
                "content_encryption_algorithm": {"algorithm": oid, "parameters": core.OctetString(iv)},
                "encrypted_content": ciphertext,
            },
        }
    )
    return bytes(cms.ContentInfo({"content_type": "enveloped_data", "content": enveloped}).dump())


def cipher_algorithm(cipher: str, key: bytes) -> algorithms.AES | TripleDES:
    if cipher.startswith("aes"):
        return algorithms.AES(key)
    return TripleDES(key * 3 if len(key) == 8 else key)  # single DES is 3DES with K1=K2=K3


def attribute(oid: str, value: core.Asn1Value) -> cms.CMSAttribute:
    return cms.CMSAttribute({"type": oid, "values": [value]})


def sign(
    content: bytes,
    key: rsa.RSAPrivateKey,
    certificate: x509.Certificate,
    attributes: Sequence[cms.CMSAttribute],
    digest: str = "sha256",
    extra_certificates: Sequence[x509.Certificate] = (),
) -> bytes:
    """SignedData (RFC 5652 §5) with ``content`` as id-data and the given signed attributes."""
    digest_value = hashlib.new(digest, content).digest()
    attrs = cms.CMSAttributes(
        [
            attribute("1.2.840.113549.1.9.3", cms.ContentType("data")),
            attribute("1.2.840.113549.1.9.5", cms.Time(name="utc_time", value=dt.datetime.now(dt.UTC))),
            attribute("1.2.840.113549.1.9.4", core.OctetString(digest_value)),
            *attributes,
        ]
    )
    signature = key.sign(attrs.dump(), padding.PKCS1v15(), DIGESTS[digest]())
    asn1 = asn1_cert(certificate)
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                name="issuer_and_serial_number",
                value={"issuer": asn1.issuer, "serial_number": asn1.serial_number},
            ),
            "digest_algorithm": {"algorithm": DIGEST_OIDS[digest]},
            "signed_attrs": attrs,
            "signature_algorithm": {"algorithm": "rsassa_pkcs1v15"},
            "signature": signature,
        }
    )
    signed = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [{"algorithm": DIGEST_OIDS[digest]}],
            "encap_content_info": {"content_type": "data", "content": content},
            "certificates": [asn1, *(asn1_cert(c) for c in extra_certificates)],
            "signer_infos": [signer_info],
        }
    )
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump())


def decrypt(enveloped_der: bytes, key: rsa.RSAPrivateKey) -> tuple[bytes, str]:
    """The plaintext of an EnvelopedData to ``key``, and the content cipher's name."""
    info = cms.ContentInfo.load(enveloped_der)
    enveloped = info["content"]
    ktri = enveloped["recipient_infos"][0].chosen
    session = key.decrypt(ktri["encrypted_key"].native, padding.PKCS1v15())
    eci = enveloped["encrypted_content_info"]
    name, _, block = CIPHER_BY_OID[eci["content_encryption_algorithm"]["algorithm"].dotted]
    iv = eci["content_encryption_algorithm"]["parameters"].native
    decryptor = Cipher(cipher_algorithm(name, session), modes.CBC(iv)).decryptor()
    padded = decryptor.update(eci["encrypted_content"].native) + decryptor.finalize()
    unpadder = sym_padding.PKCS7(block * 8).unpadder()
    return unpadder.update(padded) + unpadder.finalize(), name
