"""cryptography private-key objects whose sign() / decrypt() run inside a PKCS#11 token.

Every signature is verified with the cached public key before it is handed
out (a fault-induced bad signature must never reach a certificate).

The key objects reach the token through `TokenAccess`, a protocol that
`Pkcs11Signer` satisfies: this module depends on that small interface, not
on `ca.signers.pkcs11`, so the two modules do not import each other.
"""

from __future__ import annotations

import hmac
from typing import Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding, PKCS1v15
from cryptography.hazmat.primitives.asymmetric.utils import (
    NoDigestInfo,
    Prehashed,
    encode_dss_signature,
)
from cryptography.utils import Buffer
from pkcs11.mechanisms import Mechanism

from ca.errors import SignerUnavailable
from ca.opaque_keys import OpaqueECKey, OpaqueKey, OpaqueRSAKey

__all__ = ["TokenAccess", "TokenEd25519Key", "TokenEllipticCurveKey", "TokenRSAKey"]


class TokenAccess(Protocol):
    """What a token key object needs from the signer that owns the session (`Pkcs11Signer`)."""

    def token_sign(self, data: bytes, mechanism: Mechanism) -> bytes:
        """Blocking: one raw signature from the token (retried once on a lost session)."""
        ...

    def bad_signature(self) -> SignerUnavailable:
        """The error to raise (and log) when the token's signature does not verify."""
        ...

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Blocking: RSA PKCS#1 v1.5 decryption inside the token."""
        ...


# DER OIDs of the hashes a CA signature may use (DigestInfo, RFC 8017 section 9.2).
_HASH_OIDS = {
    "sha256": bytes.fromhex("0609608648016503040201"),
    "sha384": bytes.fromhex("0609608648016503040202"),
    "sha512": bytes.fromhex("0609608648016503040203"),
}


def _hash_for_token(data: bytes, algorithm: Prehashed | hashes.HashAlgorithm) -> tuple[bytes, hashes.HashAlgorithm]:
    """Hash in Python (the token only sees the digest); only SHA-2 256/384/512."""
    if isinstance(algorithm, Prehashed):
        algo = algorithm._algorithm  # cryptography keeps the hash only privately
        if len(data) != algo.digest_size:
            raise ValueError("prehashed data does not match the digest size")
        digest = data
    else:
        algo = algorithm
        hasher = hashes.Hash(algo)
        hasher.update(data)
        digest = hasher.finalize()
    if algo.name not in _HASH_OIDS:
        raise UnsupportedAlgorithm(f"hash {algo.name} is not supported for token keys; use sha256, sha384 or sha512")
    return digest, algo


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + body


def _digest_info(algorithm: hashes.HashAlgorithm, digest: bytes) -> bytes:
    """The DER DigestInfo that PKCS#1 v1.5 signs (RFC 8017 section 9.2)."""
    algorithm_id = _der(0x30, _HASH_OIDS[algorithm.name] + b"\x05\x00")
    return _der(0x30, algorithm_id + _der(0x04, digest))


_TOKEN_REFUSAL = "the private key lives in a PKCS#11 token and cannot be exported"


class TokenEllipticCurveKey(OpaqueECKey, ec.EllipticCurvePrivateKey):
    """ECDSA through CKM_ECDSA: the digest goes in, r||s comes out and is DER-encoded here."""

    refusal = _TOKEN_REFUSAL

    def __init__(self, signer: TokenAccess, public: ec.EllipticCurvePublicKey) -> None:
        self._signer = signer
        self._public = public

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise UnsupportedAlgorithm("token EC keys sign with ECDSA only")
        if signature_algorithm.deterministic_signing:
            raise UnsupportedAlgorithm("deterministic ECDSA (RFC 6979) is not available from a PKCS#11 token")
        digest, algo = _hash_for_token(bytes(data), signature_algorithm.algorithm)
        raw = self._signer.token_sign(digest, Mechanism.ECDSA)
        half = len(raw) // 2
        if not raw or len(raw) % 2:
            raise self._signer.bad_signature()
        signature = encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))
        try:
            self._public.verify(signature, digest, ec.ECDSA(Prehashed(algo)))
        except InvalidSignature:
            raise self._signer.bad_signature() from None
        return signature


class TokenRSAKey(OpaqueRSAKey, rsa.RSAPrivateKey):
    """PKCS#1 v1.5 through CKM_RSA_PKCS over a DigestInfo built here."""

    refusal = _TOKEN_REFUSAL

    def __init__(self, signer: TokenAccess, public: rsa.RSAPublicKey) -> None:
        self._signer = signer
        self._public = public

    def sign(
        self,
        data: bytes,
        padding: AsymmetricPadding,
        algorithm: Prehashed | hashes.HashAlgorithm | NoDigestInfo,
    ) -> bytes:
        if not isinstance(padding, PKCS1v15):
            raise UnsupportedAlgorithm("token RSA keys sign with PKCS#1 v1.5 only")
        data = bytes(data)
        if isinstance(algorithm, NoDigestInfo):
            signature = self._signer.token_sign(data, Mechanism.RSA_PKCS)
            try:
                recovered = self._public.recover_data_from_signature(signature, PKCS1v15(), None)
            except InvalidSignature:
                raise self._signer.bad_signature() from None
            if not hmac.compare_digest(recovered, data):
                raise self._signer.bad_signature()
            return signature
        digest, algo = _hash_for_token(data, algorithm)
        signature = self._signer.token_sign(_digest_info(algo, digest), Mechanism.RSA_PKCS)
        try:
            self._public.verify(signature, digest, PKCS1v15(), Prehashed(algo))
        except InvalidSignature:
            raise self._signer.bad_signature() from None
        return signature

    def decrypt(self, ciphertext: bytes, padding: AsymmetricPadding) -> bytes:
        if not isinstance(padding, PKCS1v15):
            raise UnsupportedAlgorithm("token RSA keys decrypt PKCS#1 v1.5 only")
        return self._signer.decrypt(bytes(ciphertext))


class TokenEd25519Key(OpaqueKey, ed25519.Ed25519PrivateKey):
    """Ed25519 through CKM_EDDSA: the whole message goes to the token (no prehash)."""

    refusal = _TOKEN_REFUSAL

    def __init__(self, signer: TokenAccess, public: ed25519.Ed25519PublicKey) -> None:
        self._signer = signer
        self._public = public

    def sign(self, data: Buffer) -> bytes:
        message = bytes(data)
        signature = self._signer.token_sign(message, Mechanism.EDDSA)
        try:
            self._public.verify(signature, message)
        except InvalidSignature:
            raise self._signer.bad_signature() from None
        return signature
