"""SCEP-09: every way a pkcsPKIEnvelope's key can be wrong ends in the same refusal, by the same path.

A padding oracle (Bleichenbacher; RFC 3218 §2.3.2) needs the server to answer a bad RSA block
differently from a good one. ca/cms/enveloped.py carries on with a random content key when the
RSA step fails or yields a key of the wrong length, so the refusal always comes from the content
padding check. Timing is for benchmarks; here each variant is shown to (1) raise the very same
error object contents as a plain CBC padding failure with the right key, and (2) reach the
content decryption exactly once, with a key of the cipher's length that is not the sender's key.

Variants: the content key encrypted to another RA certificate's key (while naming ours),
random bytes as the encrypted key, and RSA blocks with broken PKCS#1 v1.5 padding (wrong block
type, no zero separator, a padding string under 8 bytes) or a well-padded key of the wrong
length. An envelope that names another certificate is refused by name before the key is used:
the recipient identifier is in clear, so that answer tells an attacker nothing about the key; on
the wire protocols/scep/request.py gives it the same CertRep as the rest
(tests/integration/test_scep_hostile.py compares the CertReps).
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from ca.cms import ContentCipher, decrypt_enveloped, envelope
from ca.cms import enveloped as enveloped_module
from ca.cms.enveloped import THE_ERROR
from ca.errors import CAError, FailureReason
from ca.signers.software import SoftwareSigner
from tests.helpers import self_signed
from tests.hostile_cms import bad_encrypted_keys, broken_content_padding, with_encrypted_key

CSR_STAND_IN = b"a PKCS#10 request, as the envelope's content" * 3


@functools.cache
def ra(name: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key, certificate = self_signed(f"SCEP RA {name}")
    assert isinstance(key, rsa.RSAPrivateKey)
    return key, certificate


class RecordingSigner(SoftwareSigner):
    """The RA key, recording what each RSA decryption gave (b"" when it raised)."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        super().__init__("ra", key)
        self.outputs: list[bytes] = []

    def decrypt(self, ciphertext: bytes) -> bytes:
        try:
            result = super().decrypt(ciphertext)
        except ValueError:
            self.outputs.append(b"")
            raise
        self.outputs.append(result)
        return result


def bad_key_variants(cipher: ContentCipher) -> dict[str, bytes]:
    return bad_encrypted_keys(ra("ours")[1], ra("other")[1], cipher.key_bytes)


@pytest.mark.parametrize("cipher", [ContentCipher.AES128_CBC, ContentCipher.AES256_CBC])
async def test_scep09_bad_keys_fail_like_bad_padding(cipher: ContentCipher, monkeypatch: pytest.MonkeyPatch) -> None:
    """SCEP-09: each bad encrypted key raises what a bad CBC padding raises, after decrypting the
    content once with a key of the right length that is not the sender's."""
    key, certificate = ra("ours")
    content_keys: list[bytes] = []
    real = enveloped_module._decrypt_content

    def spy(used: ContentCipher, content_key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
        content_keys.append(content_key)
        return real(used, content_key, iv, ciphertext)

    monkeypatch.setattr(enveloped_module, "_decrypt_content", spy)

    good = envelope(CSR_STAND_IN, certificate, cipher=cipher)
    signer = RecordingSigner(key)
    with pytest.raises(CAError) as baseline:
        await decrypt_enveloped(broken_content_padding(good), signer, certificate)
    sender_key = signer.outputs[-1]
    assert len(sender_key) == cipher.key_bytes and content_keys == [sender_key]
    expected = (type(baseline.value), baseline.value.reason, baseline.value.detail, str(baseline.value))
    assert expected == (CAError, FailureReason.MALFORMED, THE_ERROR, THE_ERROR)

    for name, encrypted_key in bad_key_variants(cipher).items():
        content_keys.clear()
        signer.outputs.clear()
        variant = with_encrypted_key(good, encrypted_key)
        outcome: Any
        try:
            outcome = await decrypt_enveloped(variant, signer, certificate)
        except CAError as exc:
            outcome = (type(exc), exc.reason, exc.detail, str(exc))
        else:  # CBC has no integrity: a random key passes the padding check about 1 time in 256
            assert outcome != CSR_STAND_IN, name
            continue
        assert outcome == expected, name
        assert len(signer.outputs) == 1, f"{name}: the RSA step ran {len(signer.outputs)} times"
        [used] = content_keys
        assert len(used) == cipher.key_bytes, name
        assert used != sender_key, name
        if len(signer.outputs[0]) != cipher.key_bytes:  # RSA failed or gave a wrong-length key
            assert used not in signer.outputs[0], f"{name}: the RSA output was used as the key"


async def test_scep09_envelope_naming_another_certificate_never_touches_the_key() -> None:
    """SCEP-09: an envelope addressed to another RA certificate is refused by name, MALFORMED
    like every decryption failure, and the RA key is not used (no RSA operation to time)."""
    key, certificate = ra("ours")
    signer = RecordingSigner(key)
    elsewhere = envelope(CSR_STAND_IN, ra("other")[1])
    with pytest.raises(CAError) as err:
        await decrypt_enveloped(elsewhere, signer, certificate)
    assert err.value.reason is FailureReason.MALFORMED
    assert signer.outputs == []
