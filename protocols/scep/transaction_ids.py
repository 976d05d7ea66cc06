"""Does a transactionID belong to the CSR's key? (RFC 8894 §3.2.1.1)

The RFC says the transactionID SHOULD be a hash of the public key, "encoded as a hexadecimal or
base64 string" without naming the hash or what exactly is hashed. Clients differ: sscep sends
the upper-case hex MD5 of the SubjectPublicKeyInfo (newer builds let -F pick SHA-1/SHA-256/...),
micromdm's scepclient the standard base64 of a subject key identifier of the subjectPublicKey bits
(the PKCS#1 key): SHA-1 in old releases, SHA-256 cut to 160 bits (RFC 7093 §2 method 1) in 2.x;
others hex SHA-256. Every combination of those hashes, inputs and encodings is accepted; an id
that none of them produces is refused (badRequest): it cannot be tied to this key.
"""

from __future__ import annotations

import base64
import hashlib

from asn1crypto import keys
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HASHES = ("md5", "sha1", "sha256", "sha512")


def _encodings(data: bytes) -> set[str]:
    """Every accepted hash of ``data``, hex (compared lower-cased) and base64."""
    digests = [hashlib.new(name, data).digest() for name in HASHES]
    digests.append(hashlib.sha256(data).digest()[:20])  # RFC 7093 §2 method 1
    return {text for digest in digests for text in (digest.hex(), base64.b64encode(digest).decode())}


def _key_bits(spki: bytes) -> bytes:
    """The subjectPublicKey bits of a SubjectPublicKeyInfo (after the unused-bits octet)."""
    return bytes(keys.PublicKeyInfo.load(spki)["public_key"].contents[1:])


def matches_key(transaction_id: str, public_key: CertificatePublicKeyTypes) -> bool:
    """Whether ``transaction_id`` is one of the accepted encodings of a hash of this key (the id is
    no secret: a plain comparison will do). Hashes of the SubjectPublicKeyInfo are tried first:
    the key bits need an ASN.1 parse, which costs more than all the hashes together."""
    wanted = {transaction_id.strip(), transaction_id.strip().lower()}
    spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return bool(wanted & _encodings(spki)) or bool(wanted & _encodings(_key_bits(spki)))
