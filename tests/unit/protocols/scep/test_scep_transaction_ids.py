"""The transactionID forms tied to a key (RFC 8894 §3.2.1.1): sscep's, micromdm's, hex SHA-256."""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocols.scep.transaction_ids import matches_key


def test_the_forms_clients_send() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    spki = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    pkcs1 = key.public_bytes(Encoding.DER, PublicFormat.PKCS1)
    assert matches_key(hashlib.md5(spki).hexdigest().upper(), key)  # sscep
    assert matches_key(base64.b64encode(hashlib.sha256(pkcs1).digest()[:20]).decode(), key)  # micromdm 2.x
    assert matches_key(base64.b64encode(hashlib.sha1(pkcs1).digest()).decode(), key)  # older micromdm
    assert matches_key(hashlib.sha256(spki).hexdigest(), key)
    assert matches_key(hashlib.sha512(spki).hexdigest().upper(), key)


def test_another_key_or_a_random_id_does_not_match() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    spki = other.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert not matches_key(hashlib.sha256(spki).hexdigest(), key)
    assert not matches_key("12345", key)
    assert not matches_key("", key)
