"""JSON Web Keys for ACME accounts: RSA, EC (P-256/P-384) and OKP (Ed25519), on cryptography.

Written here instead of josepy because josepy has no EdDSA and every request
pays for key handling; RFC 7517/7518/8037 for the members, RFC 7638 for thumbprints.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocols.acme.b64 import b64_member, b64e
from protocols.acme.errors import AcmeProblem, malformed

AccountKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey

_CURVES: dict[str, tuple[ec.EllipticCurve, int]] = {
    "P-256": (ec.SECP256R1(), 32),
    "P-384": (ec.SECP384R1(), 48),
}
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192


def bad_key(detail: str) -> AcmeProblem:
    return AcmeProblem("badPublicKey", detail, 400)


@dataclass(frozen=True)
class Jwk:
    """A parsed public JWK: the key, its RFC 7638 thumbprint and its canonical JSON."""

    key: AccountKey
    kty: str
    crv: str  # "" for RSA
    thumbprint: str  # base64url SHA-256
    canonical: str  # the required members only, sorted, no whitespace

    def to_json(self) -> dict[str, str]:
        result: dict[str, str] = json.loads(self.canonical)
        return result

    def spki(self) -> bytes:
        return self.key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _member(obj: dict[str, Any], name: str) -> bytes:
    return b64_member(obj.get(name), f"JWK member {name!r}")


def _uint(data: bytes) -> int:
    return int.from_bytes(data, "big")


def parse_jwk(obj: object) -> Jwk:
    """Validate a public JWK. Private members are refused: a client must never send them."""
    if not isinstance(obj, dict):
        raise malformed("jwk must be a JSON object")
    if "d" in obj or "p" in obj:
        raise malformed("jwk contains private key material")
    kty = obj.get("kty")
    try:
        if kty == "RSA":
            n_raw, e_raw = _member(obj, "n"), _member(obj, "e")
            if n_raw[:1] == b"\x00" or e_raw[:1] == b"\x00":
                raise malformed("RSA JWK members must not have leading zero octets")
            n, e = _uint(n_raw), _uint(e_raw)
            if not MIN_RSA_BITS <= n.bit_length() <= MAX_RSA_BITS:
                raise bad_key(f"RSA key of {n.bit_length()} bits; {MIN_RSA_BITS} to {MAX_RSA_BITS} accepted")
            if e != 65537:
                raise bad_key("RSA public exponent must be 65537")
            key: AccountKey = rsa.RSAPublicNumbers(e, n).public_key()
            canon = {"e": obj["e"], "kty": "RSA", "n": obj["n"]}
            crv = ""
        elif kty == "EC":
            crv = obj.get("crv", "")
            if crv not in _CURVES:
                raise bad_key(f"EC curve {crv!r} is not accepted (P-256, P-384)")
            curve, size = _CURVES[crv]
            x, y = _member(obj, "x"), _member(obj, "y")
            if len(x) != size or len(y) != size:
                raise malformed(f"EC JWK coordinates must be {size} octets for {crv}")
            # from_encoded_point checks the point lies on the curve (ACME-02).
            key = ec.EllipticCurvePublicKey.from_encoded_point(curve, b"\x04" + x + y)
            canon = {"crv": crv, "kty": "EC", "x": obj["x"], "y": obj["y"]}
        elif kty == "OKP":
            crv = obj.get("crv", "")
            x = _member(obj, "x")
            if crv == "Ed25519" and len(x) == 32:
                key = ed25519.Ed25519PublicKey.from_public_bytes(x)
            elif crv == "Ed448" and len(x) == 57:
                key = ed448.Ed448PublicKey.from_public_bytes(x)
            else:
                raise bad_key(f"OKP curve {crv!r} with a {len(x)}-octet key is not accepted")
            canon = {"crv": crv, "kty": "OKP", "x": obj["x"]}
        else:
            raise bad_key(f"JWK key type {kty!r} is not accepted (RSA, EC, OKP)")
    except ValueError as exc:
        raise bad_key(f"invalid public key: {exc}") from None
    canonical = json.dumps(canon, sort_keys=True, separators=(",", ":"))
    thumb = b64e(hashlib.sha256(canonical.encode()).digest())
    return Jwk(key, str(kty), str(crv), thumb, canonical)


def jwk_from_key(key: AccountKey) -> dict[str, str]:
    """The public JWK of a key (tests, the benchmark client, key-change requests)."""
    if isinstance(key, rsa.RSAPublicKey):
        nums = key.public_numbers()
        return {"kty": "RSA", "n": b64e(_int_bytes(nums.n)), "e": b64e(_int_bytes(nums.e))}
    if isinstance(key, ec.EllipticCurvePublicKey):
        size = (key.curve.key_size + 7) // 8
        nums_ec = key.public_numbers()
        crv = {"secp256r1": "P-256", "secp384r1": "P-384"}[key.curve.name]
        return {
            "kty": "EC",
            "crv": crv,
            "x": b64e(nums_ec.x.to_bytes(size, "big")),
            "y": b64e(nums_ec.y.to_bytes(size, "big")),
        }
    if isinstance(key, ed25519.Ed25519PublicKey):
        return {"kty": "OKP", "crv": "Ed25519", "x": b64e(key.public_bytes(Encoding.Raw, PublicFormat.Raw))}
    return {"kty": "OKP", "crv": "Ed448", "x": b64e(key.public_bytes(Encoding.Raw, PublicFormat.Raw))}


def _int_bytes(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def key_authorization(token: str, jwk: Jwk) -> str:
    """RFC 8555 §8.1: token '.' thumbprint."""
    return f"{token}.{jwk.thumbprint}"
