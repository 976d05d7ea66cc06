"""Private-key stand-ins that return a fixed placeholder signature.

cryptography only hands out a certificate's TBS bytes after signing it. When
no linter needs a verifiable lint certificate, the issuer builds the TBS with
one of these (no signing cost) and then signs exactly those bytes with the real
key. The signature algorithm identifier in the TBS depends only on the key
algorithm and hash, never on the key, so the TBS is the real one.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
)
from cryptography.utils import Buffer

from ca.opaque_keys import OpaqueECKey, OpaqueKey, OpaqueRSAKey

_ECDSA_PLACEHOLDER = bytes.fromhex("3006020101020101")  # ECDSA-Sig-Value { r 1, s 1 }


class PlaceholderECKey(OpaqueECKey, ec.EllipticCurvePrivateKey):
    refusal = "placeholder keys have no private material"

    def __init__(self, public: ec.EllipticCurvePublicKey) -> None:
        self._public = public

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        return _ECDSA_PLACEHOLDER


class PlaceholderRSAKey(OpaqueRSAKey, rsa.RSAPrivateKey):
    refusal = "placeholder keys have no private material"

    def __init__(self, public: rsa.RSAPublicKey) -> None:
        self._public = public

    def sign(self, data: Buffer, padding: Any, algorithm: Any) -> bytes:
        return bytes((self._public.key_size + 7) // 8)

    def decrypt(self, ciphertext: bytes, padding: Any) -> bytes:
        self._refuse()


class PlaceholderEd25519Key(OpaqueKey, ed25519.Ed25519PrivateKey):
    refusal = "placeholder keys have no private material"

    def __init__(self, public: ed25519.Ed25519PublicKey) -> None:
        self._public = public

    def sign(self, data: Buffer) -> bytes:
        return bytes(64)


def placeholder_key(public: CertificateIssuerPublicKeyTypes) -> CertificateIssuerPrivateKeyTypes:
    if isinstance(public, ec.EllipticCurvePublicKey):
        return PlaceholderECKey(public)
    if isinstance(public, rsa.RSAPublicKey):
        return PlaceholderRSAKey(public)
    if isinstance(public, ed25519.Ed25519PublicKey):
        return PlaceholderEd25519Key(public)
    raise TypeError(f"no placeholder for {type(public).__name__}")
