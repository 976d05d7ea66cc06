"""CMS EnvelopedData (RFC 5652 §6) with RSA key transport: SCEP's pkcsPKIEnvelope, EST serverkeygen.

Decryption uses an RA key through `DecryptingSigner.decrypt` inside ``signer.run``, so
the key may sit in an HSM. Padding oracles are closed the RFC 3218 §2.3.2 way: when
the RSA step fails or yields a key of the wrong length, decryption carries on with a
random key, so a bad RSA block and a bad CBC padding end in the same single error.
"""

from __future__ import annotations

import enum
import os
from typing import ClassVar

from asn1crypto import cms, core
from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import BlockCipherAlgorithm, Cipher, algorithms, modes

from ca import der
from ca.cms._asn1 import (
    MAX_CMS_BYTES,
    MAX_RECIPIENTS,
    OID_DATA,
    OID_ENVELOPED_DATA,
    algorithm_identifier,
    identifies,
    issuer_and_serial_der,
    load_content_info,
    malformed,
)
from ca.der import encode_length
from ca.errors import CAError, FailureReason
from ca.sigalg import RSA_ENCRYPTION
from ca.signers.base import DecryptingSigner


class ContentCipher(enum.Enum):
    """Content-encryption algorithms by OID; DES3_CBC and DES_CBC only for legacy SCEP clients."""

    AES128_CBC = "2.16.840.1.101.3.4.1.2"
    AES192_CBC = "2.16.840.1.101.3.4.1.22"
    AES256_CBC = "2.16.840.1.101.3.4.1.42"
    DES3_CBC = "1.2.840.113549.3.7"
    DES_CBC = "1.3.14.3.2.7"  # single DES (OIW): old SCEP clients' default

    @property
    def key_bytes(self) -> int:
        return {"AES128_CBC": 16, "AES192_CBC": 24, "AES256_CBC": 32, "DES3_CBC": 24, "DES_CBC": 8}[self.name]

    @property
    def legacy(self) -> bool:
        """DES and 3DES: accepted only where a caller allows legacy clients."""
        return self in (ContentCipher.DES3_CBC, ContentCipher.DES_CBC)

    @property
    def block_bytes(self) -> int:
        return 8 if self.legacy else 16

    def algorithm(self, key: bytes) -> BlockCipherAlgorithm:
        if self is ContentCipher.DES_CBC:
            return TripleDES(key * 3)  # single DES is 3DES with K1 = K2 = K3
        return TripleDES(key) if self is ContentCipher.DES3_CBC else algorithms.AES(key)


THE_ERROR = "the envelope cannot be decrypted"  # one message for every key or padding failure


def envelope(
    content: bytes,
    recipient: x509.Certificate,
    *,
    cipher: ContentCipher = ContentCipher.AES256_CBC,
    content_type: str = OID_DATA,
) -> bytes:
    """Encrypt ``content`` to the RSA key of ``recipient`` (KeyTransRecipientInfo), DER ContentInfo."""
    public = recipient.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise ValueError("key transport needs an RSA recipient certificate")
    key = os.urandom(cipher.key_bytes)
    iv = os.urandom(cipher.block_bytes)
    padder = sym_padding.PKCS7(cipher.block_bytes * 8).padder()
    padded = padder.update(content) + padder.finalize()
    encryptor = Cipher(cipher.algorithm(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    recipient_info = der.tlv(  # KeyTransRecipientInfo, RFC 5652 §6.2.1
        0x30,
        der.tlv(0x02, b"\x00"),  # version 0: the recipient named by issuer and serial number
        issuer_and_serial_der(recipient),
        algorithm_identifier(cms.KeyEncryptionAlgorithm, "rsaes_pkcs1v15"),
        der.tlv(0x04, public.encrypt(key, padding.PKCS1v15())),
    )
    encrypted_content_info = der.tlv(
        0x30,
        der.oid(content_type),
        der.tlv(0x30, der.oid(cipher.value), der.tlv(0x04, iv)),  # the IV is the cipher's parameter
        der.tlv(0x80, ciphertext),  # encryptedContent [0] IMPLICIT OCTET STRING
    )
    enveloped = der.tlv(0x30, der.tlv(0x02, b"\x00"), der.tlv(0x31, recipient_info), encrypted_content_info)
    return der.tlv(0x30, der.oid(OID_ENVELOPED_DATA), der.tlv(0xA0, enveloped))


def _cipher(oid: str, allow_des3: bool) -> ContentCipher:
    try:
        cipher = ContentCipher(oid)
    except ValueError:
        raise CAError(f"content encryption {oid} is not accepted", FailureReason.BAD_ALGORITHM) from None
    if cipher.legacy and not allow_des3:
        raise CAError("DES and 3DES content encryption are not accepted here", FailureReason.BAD_ALGORITHM)
    return cipher


def envelope_cipher(der: bytes, *, max_bytes: int = MAX_CMS_BYTES) -> ContentCipher:
    """The content cipher an EnvelopedData names (SCEP answers in the same one), BAD_ALGORITHM
    if it is none we know; nothing is decrypted and no legacy rule applies here."""
    info = load_content_info(der, OID_ENVELOPED_DATA, max_bytes, "EnvelopedData")
    with malformed("EnvelopedData"):
        oid = info["content"]["encrypted_content_info"]["content_encryption_algorithm"]["algorithm"].dotted
    return _cipher(oid, allow_des3=True)


class _RawEncryptedContentInfo(core.Sequence):  # type: ignore[misc]
    """EncryptedContentInfo with its ciphertext left raw (see `_ciphertext`)."""

    _fields: ClassVar[list[tuple[str, type[core.Asn1Value], dict[str, bool]]]] = [
        ("content_type", cms.ContentType, {}),
        ("content_encryption_algorithm", cms.EncryptionAlgorithm, {}),
        ("encrypted_content", core.Any, {"optional": True}),
    ]


def _ciphertext(eci: cms.EncryptedContentInfo) -> object:
    """The encryptedContent octets. BER senders may write them as a constructed [0] of OCTET STRING
    chunks (Go's pkcs7, which micromdm's scepclient uses); asn1crypto reads only the primitive
    form of an implicitly tagged OCTET STRING, so the chunks are joined as a constructed one."""
    try:
        return eci["encrypted_content"].native
    except ValueError:
        body = bytes(eci.contents)  # as received: the failed read above leaves eci unable to dump
        raw = _RawEncryptedContentInfo.load(b"\x30" + encode_length(len(body)) + body)["encrypted_content"]
        return core.OctetString.load(
            b"\x24\x80" + raw.contents + b"\x00\x00"
        ).native  # indefinite length: asn1crypto joins chunks


def _decrypt_content(cipher: ContentCipher, key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    try:
        decryptor = Cipher(cipher.algorithm(key), modes.CBC(iv)).decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        unpadder = sym_padding.PKCS7(cipher.block_bytes * 8).unpadder()
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise CAError(THE_ERROR, FailureReason.MALFORMED) from None


async def decrypt_enveloped(
    der: bytes,
    signer: DecryptingSigner,
    certificate: x509.Certificate,
    *,
    max_bytes: int = MAX_CMS_BYTES,
    allow_des3: bool = False,
) -> bytes:
    """The plaintext of an EnvelopedData addressed to ``certificate`` (the key ``signer`` holds).

    Only KeyTransRecipientInfo with rsaEncryption; AES-CBC always, 3DES-CBC when
    ``allow_des3`` (legacy SCEP). An envelope for another recipient is refused by name;
    a wrong key and a bad padding give the same CAError (MALFORMED, `THE_ERROR`).
    """
    info = load_content_info(der, OID_ENVELOPED_DATA, max_bytes, "EnvelopedData")
    with malformed("EnvelopedData"):
        enveloped = info["content"]
        recipients = enveloped["recipient_infos"]
        if len(recipients) > MAX_RECIPIENTS:
            raise CAError(f"EnvelopedData has over {MAX_RECIPIENTS} recipients", FailureReason.MALFORMED)
        ours = [r.chosen for r in recipients if r.name == "ktri" and identifies(r.chosen["rid"], certificate)]
        if not ours:
            raise CAError("the envelope is not addressed to this RA certificate", FailureReason.MALFORMED)
        ktri = ours[0]
        if ktri["key_encryption_algorithm"]["algorithm"].dotted != RSA_ENCRYPTION:
            raise CAError("key transport other than RSA PKCS#1 v1.5 is not accepted", FailureReason.BAD_ALGORITHM)
        encrypted_key = bytes(ktri["encrypted_key"].native)
        eci = enveloped["encrypted_content_info"]
        algorithm = eci["content_encryption_algorithm"]
        cipher = _cipher(algorithm["algorithm"].dotted, allow_des3)
        iv = algorithm["parameters"].native
        if not isinstance(iv, bytes) or len(iv) != cipher.block_bytes:
            raise CAError("content encryption IV is missing or of the wrong size", FailureReason.MALFORMED)
        ciphertext = _ciphertext(eci)
        if not isinstance(ciphertext, bytes) or not ciphertext or len(ciphertext) % cipher.block_bytes:
            raise CAError("encrypted content is missing or not whole blocks", FailureReason.MALFORMED)

    try:
        key = await signer.run(lambda: signer.decrypt(encrypted_key))
    except ValueError:  # the DecryptingSigner contract: every bad ciphertext is a ValueError
        key = b""
    if len(key) != cipher.key_bytes:
        key = os.urandom(cipher.key_bytes)  # carry on: the content padding check fails like any other
    return _decrypt_content(cipher, key, iv, ciphertext)
