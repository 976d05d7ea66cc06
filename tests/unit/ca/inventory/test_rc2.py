"""RC2 decryption against RFC 2268's test vectors and against OpenSSL's 128-bit RC2 (through
cryptography), the one key length both implement.

Reliability: CLM-07 (legacy PKCS#12 certificates read without handing the key to a loader).
"""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import RC2
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from ca.inventory.rc2 import decrypt_cbc, expand_key

# RFC 2268 section 5: (key, effective key bits, plaintext, ciphertext)
VECTORS = [
    ("0000000000000000", 63, "0000000000000000", "ebb773f993278eff"),
    ("ffffffffffffffff", 64, "ffffffffffffffff", "278b27e42e2f0d49"),
    ("3000000000000000", 64, "1000000000000001", "30649edf9be7d2c2"),
    ("88", 64, "0000000000000000", "61a8a244adacccf0"),
    ("88bca90e90875a", 64, "0000000000000000", "6ccf4308974c267f"),
    ("88bca90e90875a7f0f79c384627bafb2", 64, "0000000000000000", "1a807d272bbe5db1"),
    ("88bca90e90875a7f0f79c384627bafb2", 128, "0000000000000000", "2269552ab0f85ca6"),
]


@pytest.mark.parametrize(("key", "bits", "plain", "cipher"), VECTORS)
def test_rfc_2268_vectors(key: str, bits: int, plain: str, cipher: str) -> None:
    # CBC with a zero IV over one block is the bare block decryption
    assert decrypt_cbc(bytes.fromhex(key), bits, bytes(8), bytes.fromhex(cipher)).hex() == plain


def test_agrees_with_openssl_rc2_128_cbc() -> None:
    key, iv, plain = os.urandom(16), os.urandom(8), os.urandom(8 * 37)
    encryptor = Cipher(RC2(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(plain) + encryptor.finalize()
    assert decrypt_cbc(key, 128, iv, ciphertext) == plain


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="whole 8-byte blocks"):
        decrypt_cbc(bytes(5), 40, bytes(8), bytes(7))
    with pytest.raises(ValueError, match="whole 8-byte blocks"):
        decrypt_cbc(bytes(5), 40, bytes(4), bytes(8))
    with pytest.raises(ValueError, match="RC2 key of 0 bytes"):
        expand_key(b"", 40)
