"""Key algorithms Tetra knows, by one short name ("ec-p256", "rsa-2048", "ed25519").

Used for CA keys, RA keys, server-side key generation (EST serverkeygen) and
for describing a request's public key to profile policy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ca.errors import CAError, FailureReason

SignatureHash = hashes.SHA256 | hashes.SHA384 | hashes.SHA512

KEY_SPECS = ("ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096", "ed25519")

_CURVES: dict[str, type[ec.EllipticCurve]] = {"p256": ec.SECP256R1, "p384": ec.SECP384R1}
_CURVE_NAMES = {
    "secp192r1": "p192",
    "secp224r1": "p224",
    "secp256r1": "p256",
    "secp384r1": "p384",
    "secp521r1": "p521",
}


@dataclass(frozen=True)
class KeyDescription:
    """What profile policy needs to know about a public key."""

    algorithm: str  # "ec", "rsa", "ed25519", "ed448"
    size: int  # bits for RSA, curve bits for EC, 256 for Ed25519
    curve: str = ""  # "p256", "p384"... for EC

    @property
    def spec(self) -> str:
        if self.algorithm == "ec":
            return f"ec-{self.curve}"
        if self.algorithm == "rsa":
            return f"rsa-{self.size}"
        return self.algorithm


def describe_public_key(key: CertificatePublicKeyTypes) -> KeyDescription:
    """Describe a key; refuse algorithms a CA never certifies (DSA, X25519...)."""
    if isinstance(key, rsa.RSAPublicKey):
        return KeyDescription("rsa", key.key_size)
    if isinstance(key, ec.EllipticCurvePublicKey):
        curve = _CURVE_NAMES.get(key.curve.name, key.curve.name)
        return KeyDescription("ec", key.curve.key_size, curve)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return KeyDescription("ed25519", 256)
    if isinstance(key, ed448.Ed448PublicKey):
        return KeyDescription("ed448", 456)
    raise CAError(f"unsupported public key type {type(key).__name__}", FailureReason.BAD_PUBLIC_KEY)


def parse_key_spec(spec: str) -> tuple[str, int | str]:
    """'rsa-3072' -> ('rsa', 3072); 'ec-p256' -> ('ec', 'p256'); 'ed25519' -> ('ed25519', 0)."""
    if spec == "ed25519":
        return "ed25519", 0
    alg, _, param = spec.partition("-")
    if alg == "rsa" and param in ("2048", "3072", "4096"):
        return "rsa", int(param)
    if alg == "ec" and param in _CURVES:
        return "ec", param
    raise ValueError(f"unknown key type {spec!r}; expected one of {', '.join(KEY_SPECS)}")


def generate_private_key(spec: str) -> CertificateIssuerPrivateKeyTypes:
    """A fresh software key of the named type."""
    alg, param = parse_key_spec(spec)
    if alg == "rsa":
        assert isinstance(param, int)
        return rsa.generate_private_key(public_exponent=65537, key_size=param)
    if alg == "ec":
        assert isinstance(param, str)
        return ec.generate_private_key(_CURVES[param]())
    return ed25519.Ed25519PrivateKey.generate()


def default_hash(key: CertificatePublicKeyTypes) -> SignatureHash | None:
    """The signature hash that matches the issuer key's strength (None for EdDSA)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        return hashes.SHA384() if key.curve.key_size >= 384 else hashes.SHA256()
    if isinstance(key, rsa.RSAPublicKey):
        return hashes.SHA256()
    return None


def hash_by_name(name: str) -> SignatureHash:
    table: dict[str, SignatureHash] = {
        "sha256": hashes.SHA256(),
        "sha384": hashes.SHA384(),
        "sha512": hashes.SHA512(),
    }
    try:
        return table[name.lower()]
    except KeyError:
        raise ValueError(f"unknown hash {name!r}; expected sha256, sha384 or sha512") from None


def spki_digest(public_key: CertificatePublicKeyTypes) -> str:
    """SHA-256 of the key's SubjectPublicKeyInfo, hex: what ties a protocol transaction to one key
    (SCEP and CMP refuse a known transactionID that comes back with another key)."""
    spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()
