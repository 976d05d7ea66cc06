"""micromdm's scepclient 2.1.0 (Debian's `scep` package) names its transaction by the standard
base64 of the first 20 octets of SHA-256 over the PKCS#1 public key (SCEP-21): seen on the wire
as VKjvlW55OQPodQ4yFG7nt0Kx5lI= for a key whose SHA-256 begins VKjvlW55OQPodQ4yFG7nt0Kx5lK9.
Without this form every PKCSReq it sent was refused as badRequest."""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocols.scep.transaction_ids import matches_key


def test_scepclient_2_1_transaction_id_matches_its_key_scep_21() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    digest = hashlib.sha256(key.public_bytes(Encoding.DER, PublicFormat.PKCS1)).digest()
    assert matches_key(base64.b64encode(digest[:20]).decode(), key)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    assert not matches_key(base64.b64encode(digest[:20]).decode(), other)
