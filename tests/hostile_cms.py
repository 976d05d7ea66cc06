"""Hostile CMS for the SCEP path (SCEP-09, SCEP-10): EnvelopedData a hostile client builds on purpose.

Shared by the parser fuzz test (tests/fuzz/test_fuzz_scep_cms.py), which feeds them to ca/cms,
and the wire test (tests/integration/test_scep_hostile.py), which POSTs them to `tetra serve`:
recipients of every other kind (KeyAgreeRecipientInfo whose algorithm lacks its parameters,
PasswordRecipientInfo, KEKRecipientInfo, OtherRecipientInfo), a ktri naming the RA with an
algorithm not taken, content encryption without its IV, too many recipients, nesting 40,000
deep (DER and BER indefinite lengths), a length of 2^64 - 1. And for SCEP-09 (used by
tests/unit/protocols/scep/test_uniform_decryption.py and the wire test): encrypted content keys
that are wrong in every way RSA PKCS#1 v1.5 can be, and a content whose CBC padding is broken.
"""

from __future__ import annotations

import functools
import os

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from ca.cms import ContentCipher, envelope

ENVELOPED = "1.2.840.113549.1.7.3"
SIGNED = "1.2.840.113549.1.7.2"


def _named(recipient: x509.Certificate) -> cms.IssuerAndSerialNumber:
    cert = asn1_x509.Certificate.load(recipient.public_bytes(Encoding.DER))
    return cms.IssuerAndSerialNumber({"issuer": cert.issuer, "serial_number": cert.serial_number})


def _content_info(enveloped: cms.EnvelopedData) -> bytes:
    return bytes(cms.ContentInfo({"content_type": "enveloped_data", "content": enveloped}).dump())


@functools.cache
def valid_envelope(recipient: x509.Certificate) -> bytes:
    """An AES-128 envelope to ``recipient`` around 300 bytes, the seed of the hostile ones."""
    return envelope(b"0" * 300, recipient, cipher=ContentCipher.AES128_CBC)


def _with_recipient(recipient: x509.Certificate, info: cms.RecipientInfo) -> bytes:
    """The valid envelope with its one recipient replaced by ``info``."""
    enveloped = cms.ContentInfo.load(valid_envelope(recipient))["content"].copy()
    enveloped["recipient_infos"] = [info]
    return _content_info(enveloped)


@functools.cache
def hostile_envelopes(recipient: x509.Certificate) -> dict[str, tuple[bytes, str]]:
    """EnvelopedData a hostile client builds on purpose for ``recipient`` (an RA certificate), by
    name, with the start of the refusal ca/cms must give each."""
    ktri_fields = {
        "version": "v0",
        "rid": cms.RecipientIdentifier(name="issuer_and_serial_number", value=_named(recipient)),
        "key_encryption_algorithm": {"algorithm": "rsaes_oaep"},  # OAEP without its parameters
        "encrypted_key": b"\x01" * 256,
    }
    kari = cms.KeyAgreeRecipientInfo(
        {
            "version": "v3",
            "originator": cms.OriginatorIdentifierOrKey(
                name="originator_key",
                value={"algorithm": {"algorithm": "ec"}, "public_key": b"\x04" + b"\x02" * 64},  # no curve
            ),
            "key_encryption_algorithm": {"algorithm": "aes128_wrap"},
            "recipient_encrypted_keys": [
                {
                    "rid": cms.KeyAgreementRecipientIdentifier(
                        name="issuer_and_serial_number", value=_named(recipient)
                    ),
                    "encrypted_key": b"\x03" * 24,
                }
            ],
        }
    )
    pwri = cms.PasswordRecipientInfo(
        {"version": "v0", "key_encryption_algorithm": {"algorithm": "aes256_wrap"}, "encrypted_key": b"\x04" * 40}
    )
    kekri = cms.KEKRecipientInfo(
        {
            "version": "v4",
            "kekid": {"key_identifier": b"kek"},
            "key_encryption_algorithm": {"algorithm": "aes128_wrap"},
            "encrypted_key": b"\x05" * 24,
        }
    )
    ori = cms.OtherRecipientInfo({"ori_type": "1.2.3.4", "ori_value": core.Null()})
    no_iv = cms.ContentInfo.load(valid_envelope(recipient))["content"].copy()
    no_iv["encrypted_content_info"]["content_encryption_algorithm"] = {"algorithm": ContentCipher.AES128_CBC.value}
    many = cms.ContentInfo.load(valid_envelope(recipient))["content"].copy()
    many["recipient_infos"] = [many["recipient_infos"][0]] * 40
    not_ours = "the envelope is not addressed to this RA certificate"
    return {
        "kari without parameters": (_with_recipient(recipient, cms.RecipientInfo(name="kari", value=kari)), not_ours),
        "pwri": (_with_recipient(recipient, cms.RecipientInfo(name="pwri", value=pwri)), not_ours),
        "kekri": (_with_recipient(recipient, cms.RecipientInfo(name="kekri", value=kekri)), not_ours),
        "ori": (_with_recipient(recipient, cms.RecipientInfo(name="ori", value=ori)), not_ours),
        "ktri OAEP without parameters": (
            _with_recipient(recipient, cms.RecipientInfo(name="ktri", value=cms.KeyTransRecipientInfo(ktri_fields))),
            "key transport other than RSA PKCS#1 v1.5 is not accepted",
        ),
        "content encryption without IV": (_content_info(no_iv), "content encryption IV is missing"),
        "40 recipients": (_content_info(many), "EnvelopedData has over 16 recipients"),
        "IV parameters nested 40000 deep": (_deep_iv(recipient), "EnvelopedData is malformed"),
        "nested 40000 deep": (nested(40_000, indefinite=False), "EnvelopedData is malformed"),
        "nested 40000 deep, BER indefinite": (nested(40_000, indefinite=True), "EnvelopedData is malformed"),
        "length of 2^64 - 1": (huge_length(8, 0xFF), "EnvelopedData is malformed"),
    }


def _tlv(tag: int, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return bytes([tag]) + _length(len(body)) + body


def _deep_iv(recipient: x509.Certificate) -> bytes:
    """The valid envelope with its AES-CBC parameters (the IV, an ANY) nested 40,000 deep."""
    enveloped = cms.ContentInfo.load(valid_envelope(recipient))["content"]
    eci = enveloped["encrypted_content_info"]
    algorithm = _tlv(0x30, bytes(eci["content_encryption_algorithm"]["algorithm"].dump()), _sequences(40_000, False))
    eci_der = _tlv(0x30, bytes(eci["content_type"].dump()), algorithm, bytes(eci["encrypted_content"].dump()))
    body = _tlv(0x30, bytes(enveloped["version"].dump()), bytes(enveloped["recipient_infos"].dump()), eci_der)
    return _tlv(0x30, bytes(core.ObjectIdentifier(ENVELOPED).dump()), _tlv(0xA0, body))


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _sequences(depth: int, indefinite: bool) -> bytes:
    """SEQUENCE inside SEQUENCE ``depth`` deep around a NULL (about 4 to 5 bytes a level)."""
    if indefinite:
        return b"\x30\x80" * depth + b"\x05\x00" + b"\x00\x00" * depth
    headers, size = [], 2
    for _ in range(depth):
        header = b"\x30" + _length(size)
        headers.append(header)
        size += len(header)
    return b"".join(reversed(headers)) + b"\x05\x00"


def nested(depth: int, indefinite: bool, content_type: str = ENVELOPED) -> bytes:
    """A ContentInfo whose content is `_sequences` (under the size limit up to about 40,000
    levels, so the parser, not the limit, meets the depth)."""
    inner = _sequences(depth, indefinite)
    oid = bytes(core.ObjectIdentifier(content_type).dump())
    explicit = b"\xa0" + _length(len(inner)) + inner
    return b"\x30" + _length(len(oid) + len(explicit)) + oid + explicit


def huge_length(prefix_octets: int, fill: int) -> bytes:
    """A SEQUENCE claiming up to 2^64 bytes of content, followed by a few real ones."""
    return b"\x30" + bytes([0x80 | prefix_octets]) + bytes([fill]) * prefix_octets + b"\x06\x03\x2a\x03\x04"


def raw_rsa(block: bytes, certificate: x509.Certificate) -> bytes:
    """``block`` (one modulus-sized message) encrypted with no padding: a chosen RSA ciphertext."""
    public = certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    numbers = public.public_numbers()
    size = (numbers.n.bit_length() + 7) // 8
    assert len(block) == size
    return pow(int.from_bytes(block, "big"), numbers.e, numbers.n).to_bytes(size, "big")


def nonzero(count: int) -> bytes:
    return bytes(b % 255 + 1 for b in os.urandom(count))


def with_encrypted_key(der: bytes, encrypted_key: bytes) -> bytes:
    info = cms.ContentInfo.load(der)
    original = info["content"]["recipient_infos"][0].chosen["encrypted_key"].native
    assert len(encrypted_key) == len(original)
    return der.replace(original, encrypted_key)


def broken_content_padding(der: bytes) -> bytes:
    """The right key, but the last CBC block's padding made invalid (the baseline refusal)."""
    info = cms.ContentInfo.load(der)
    ciphertext = info["content"]["encrypted_content_info"]["encrypted_content"].native
    flipped = bytearray(ciphertext)
    flipped[-17] ^= 0x5A  # XORs into the last padding byte through CBC: never valid padding
    return der.replace(ciphertext, bytes(flipped))


def bad_encrypted_keys(ra: x509.Certificate, other: x509.Certificate, key_bytes: int) -> dict[str, bytes]:
    """encryptedKey fields for an envelope to ``ra`` that an attacker (or a confused client) might
    send, by name: none yields a content key of ``key_bytes`` that the sender knows (SCEP-09)."""
    other_public = other.public_key()
    assert isinstance(other_public, rsa.RSAPublicKey)
    size = 256
    return {
        "encrypted to another RA key": other_public.encrypt(os.urandom(key_bytes), padding.PKCS1v15()),
        "random ciphertext": os.urandom(size),
        "block type 1": raw_rsa(b"\x00\x01" + b"\xff" * (size - 3 - key_bytes) + b"\x00" + os.urandom(key_bytes), ra),
        "no zero separator": raw_rsa(b"\x00\x02" + nonzero(size - 2), ra),
        "padding under 8 bytes": raw_rsa(b"\x00\x02" + nonzero(4) + b"\x00" + os.urandom(size - 7), ra),
        "key of the wrong length": raw_rsa(b"\x00\x02" + nonzero(size - 3 - 5) + b"\x00" + os.urandom(5), ra),
    }
