"""Private-key stand-ins that return a fixed placeholder signature.

cryptography only hands out a certificate's TBS bytes after signing it. When
no linter needs a verifiable lint certificate, the issuer builds the TBS with
one of these (no signing cost) and then signs exactly those bytes with the real
key. The signature algorithm identifier in the TBS depends only on the key
algorithm and hash, never on the key, so the TBS is the real one.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
)
from cryptography.utils import Buffer

_ECDSA_PLACEHOLDER = bytes.fromhex("3006020101020101")  # ECDSA-Sig-Value { r 1, s 1 }


def _no_export() -> TypeError:
    return TypeError("placeholder keys have no private material")


class PlaceholderECKey(ec.EllipticCurvePrivateKey):
    def __init__(self, public: ec.EllipticCurvePublicKey) -> None:
        self._public = public

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        return _ECDSA_PLACEHOLDER

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.curve.key_size

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        raise _no_export()

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        raise _no_export()

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        raise _no_export()

    def __copy__(self) -> PlaceholderECKey:
        return self

    def __deepcopy__(self, memo: dict[Any, Any]) -> PlaceholderECKey:
        return self


class PlaceholderRSAKey(rsa.RSAPrivateKey):
    def __init__(self, public: rsa.RSAPublicKey) -> None:
        self._public = public

    def sign(self, data: Buffer, padding: Any, algorithm: Any) -> bytes:
        return bytes((self._public.key_size + 7) // 8)

    def decrypt(self, ciphertext: bytes, padding: Any) -> bytes:
        raise _no_export()

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        raise _no_export()

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        raise _no_export()

    def __copy__(self) -> PlaceholderRSAKey:
        return self

    def __deepcopy__(self, memo: dict[Any, Any]) -> PlaceholderRSAKey:
        return self


class PlaceholderEd25519Key(ed25519.Ed25519PrivateKey):
    def __init__(self, public: ed25519.Ed25519PublicKey) -> None:
        self._public = public

    def sign(self, data: Buffer) -> bytes:
        return bytes(64)

    def public_key(self) -> ed25519.Ed25519PublicKey:
        return self._public

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        raise _no_export()

    def private_bytes_raw(self) -> bytes:
        raise _no_export()

    def __copy__(self) -> PlaceholderEd25519Key:
        return self

    def __deepcopy__(self, memo: dict[Any, Any]) -> PlaceholderEd25519Key:
        return self


def placeholder_key(public: CertificateIssuerPublicKeyTypes) -> CertificateIssuerPrivateKeyTypes:
    if isinstance(public, ec.EllipticCurvePublicKey):
        return PlaceholderECKey(public)
    if isinstance(public, rsa.RSAPublicKey):
        return PlaceholderRSAKey(public)
    if isinstance(public, ed25519.Ed25519PublicKey):
        return PlaceholderEd25519Key(public)
    raise TypeError(f"no placeholder for {type(public).__name__}")
