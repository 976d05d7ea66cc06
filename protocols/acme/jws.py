"""Flattened JWS (RFC 7515 §7.2.2) as ACME uses it (RFC 8555 §6.2): parse, check, verify, sign.

Sans-IO: `parse_jws` turns request bytes into a `JwsMessage` or raises
`AcmeProblem`; `verify` checks the signature against a parsed `Jwk`. `sign_jws`
is the matching encoder for tests, the benchmark client and key rollover.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from protocols import json_body
from protocols.acme.b64 import b64_member, b64e
from protocols.acme.errors import AcmeProblem, malformed
from protocols.acme.jwk import Jwk
from protocols.json_body import JsonRefused

ALGORITHMS = ("ES256", "ES384", "RS256", "EdDSA")
_EC_ALGS = {"ES256": ("P-256", hashes.SHA256(), 32), "ES384": ("P-384", hashes.SHA384(), 48)}
_MAC_ALGS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_ALLOWED_TOP = {"protected", "payload", "signature"}


@dataclass(frozen=True)
class JwsMessage:
    protected: dict[str, Any]
    protected_b64: str
    payload_b64: str
    payload: bytes
    signature: bytes
    alg: str
    url: str
    nonce: str | None
    jwk: dict[str, Any] | None
    kid: str | None

    @property
    def signing_input(self) -> bytes:
        return f"{self.protected_b64}.{self.payload_b64}".encode("ascii")

    @property
    def is_post_as_get(self) -> bool:
        return self.payload_b64 == ""


def bad_algorithm(alg: object) -> AcmeProblem:
    return AcmeProblem(
        "badSignatureAlgorithm", f"JWS algorithm {alg!r} is not accepted", 400, extra={"algorithms": list(ALGORITHMS)}
    )


def _b64(value: object, what: str) -> bytes:
    return b64_member(value, f"JWS {what}")


def loads_json(data: bytes, what: str) -> Any:
    """JSON through the one bounded decoder (protocols.json_body: nesting, sizes, duplicate keys
    refused as RFC 7515 §5.2 asks), its refusal worded as ACME's ``malformed``."""
    try:
        return json_body.decode(data)
    except JsonRefused as exc:
        raise malformed(f"{what} {exc}") from None


def parse_jws(body: bytes, *, allow_no_nonce: bool = False) -> JwsMessage:
    """Structure and header rules of RFC 8555 §6.2 (ACME-03, ACME-05, ACME-06)."""
    outer = loads_json(body, "request body")
    if not isinstance(outer, dict):
        raise malformed("request body must be a flattened JWS object")
    if "signatures" in outer:
        raise malformed("JWS must use the flattened serialization (one signature, no 'signatures')")
    if "header" in outer:
        raise malformed("JWS must not have an unprotected header")
    extra = set(outer) - _ALLOWED_TOP
    if extra:
        raise malformed(f"JWS has unexpected members: {', '.join(sorted(extra))}")
    if "payload" not in outer:
        raise malformed("JWS payload is missing (detached payloads are not accepted)")
    protected_raw = _b64(outer.get("protected"), "protected header")
    payload_b64 = outer["payload"]
    payload = _b64(payload_b64, "payload")
    signature = _b64(outer.get("signature"), "signature")
    protected = loads_json(protected_raw, "protected header")
    if not isinstance(protected, dict):
        raise malformed("JWS protected header must be a JSON object")
    alg = protected.get("alg")
    if alg not in ALGORITHMS:
        raise bad_algorithm(alg)
    if "b64" in protected or "crit" in protected:
        raise malformed("JWS 'b64' and 'crit' header parameters are not accepted")
    url = protected.get("url")
    if not isinstance(url, str) or not url:
        raise malformed("JWS protected header must carry 'url'")
    nonce = protected.get("nonce")
    if nonce is None and not allow_no_nonce:
        raise AcmeProblem("badNonce", "JWS protected header must carry 'nonce'")
    if nonce is not None and not isinstance(nonce, str):
        raise AcmeProblem("badNonce", "JWS 'nonce' must be a string")
    jwk, kid = protected.get("jwk"), protected.get("kid")
    if jwk is not None and kid is not None:
        raise malformed("JWS must carry exactly one of 'jwk' and 'kid', not both")
    if jwk is None and kid is None:
        raise malformed("JWS must carry one of 'jwk' and 'kid'")
    if jwk is not None and not isinstance(jwk, dict):
        raise malformed("JWS 'jwk' must be a JSON object")
    if kid is not None and not isinstance(kid, str):
        raise malformed("JWS 'kid' must be a string")
    return JwsMessage(
        protected, str(outer["protected"]), str(payload_b64), payload, signature, str(alg), url, nonce, jwk, kid
    )


def check_alg_matches_key(alg: str, key: Jwk) -> None:
    """RFC 7518: the algorithm must fit the key (ACME-02: JWK alg != header alg)."""
    if alg == "RS256" and key.kty == "RSA":
        return
    if alg == "EdDSA" and key.kty == "OKP":
        return
    if alg in _EC_ALGS and key.kty == "EC" and _EC_ALGS[alg][0] == key.crv:
        return
    raise malformed(f"JWS algorithm {alg} does not match the {key.kty} {key.crv} key".replace("  ", " "))


def verify(msg: JwsMessage, key: Jwk) -> None:
    """Signature check; raises malformed when it does not verify (RFC 8555 §6.2)."""
    check_alg_matches_key(msg.alg, key)
    data = msg.signing_input
    pub = key.key
    try:
        if isinstance(pub, ec.EllipticCurvePublicKey):
            _, hash_alg, size = _EC_ALGS[msg.alg]
            if len(msg.signature) != 2 * size:
                raise InvalidSignature
            r = int.from_bytes(msg.signature[:size], "big")
            s = int.from_bytes(msg.signature[size:], "big")
            pub.verify(encode_dss_signature(r, s), data, ec.ECDSA(hash_alg))
        elif isinstance(pub, rsa.RSAPublicKey):
            pub.verify(msg.signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(pub, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            pub.verify(msg.signature, data)
        else:  # pragma: no cover - parse_jwk admits nothing else
            raise InvalidSignature
    except InvalidSignature:
        raise malformed("JWS signature does not verify") from None


def verify_mac(msg: JwsMessage, secret: bytes) -> None:
    """External account binding (RFC 8555 §7.3.4): HMAC over the same signing input."""
    digest = _MAC_ALGS.get(str(msg.protected.get("alg")))
    if digest is None:
        raise malformed("externalAccountBinding must use HS256, HS384 or HS512")
    expected = hmac.new(secret, msg.signing_input, digest).digest()
    if not hmac.compare_digest(expected, msg.signature):
        raise AcmeProblem("unauthorized", "externalAccountBinding signature does not verify", 403)


def parse_eab(obj: object) -> JwsMessage:
    """The inner EAB JWS: HS* algorithm, 'kid' and 'url', no nonce (RFC 8555 §7.3.4)."""
    if not isinstance(obj, dict):
        raise malformed("externalAccountBinding must be a flattened JWS object")
    if set(obj) - _ALLOWED_TOP or "payload" not in obj:
        raise malformed("externalAccountBinding must be a flattened JWS object")
    protected = loads_json(_b64(obj.get("protected"), "EAB protected header"), "EAB protected header")
    if not isinstance(protected, dict):
        raise malformed("EAB protected header must be a JSON object")
    if protected.get("alg") not in _MAC_ALGS:
        raise malformed("externalAccountBinding must use HS256, HS384 or HS512")
    if "nonce" in protected:
        raise malformed("externalAccountBinding must not carry a nonce")
    kid, url = protected.get("kid"), protected.get("url")
    if not isinstance(kid, str) or not isinstance(url, str):
        raise malformed("externalAccountBinding must carry 'kid' and 'url'")
    return JwsMessage(
        protected,
        str(obj["protected"]),
        str(obj["payload"]),
        _b64(obj["payload"], "EAB payload"),
        _b64(obj.get("signature"), "EAB signature"),
        str(protected["alg"]),
        url,
        None,
        None,
        kid,
    )


# -- encoder (client side) ---------------------------------------------------------------
SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def alg_for(key: SigningKey) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ES384" if key.curve.key_size == 384 else "ES256"
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    return "EdDSA"


def sign_raw(key: SigningKey, data: bytes, alg: str) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        _, hash_alg, size = _EC_ALGS[alg]
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hash_alg)))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(data)


def sign_jws(key: SigningKey, payload: bytes | None, protected: dict[str, Any], alg: str | None = None) -> bytes:
    """A flattened JWS; ``payload=None`` makes a POST-as-GET (empty payload)."""
    header = {"alg": alg or alg_for(key), **protected}
    protected_b64 = b64e(json.dumps(header, separators=(",", ":")).encode())
    payload_b64 = "" if payload is None else b64e(payload)
    signature = sign_raw(key, f"{protected_b64}.{payload_b64}".encode(), header["alg"])
    return json.dumps({"protected": protected_b64, "payload": payload_b64, "signature": b64e(signature)}).encode()


def sign_mac(secret: bytes, payload: bytes, protected: dict[str, Any]) -> dict[str, str]:
    """An HS256 JWS object (EAB) as a JSON-ready dict."""
    header = {"alg": "HS256", **protected}
    protected_b64 = b64e(json.dumps(header, separators=(",", ":")).encode())
    payload_b64 = b64e(payload)
    mac = hmac.new(secret, f"{protected_b64}.{payload_b64}".encode(), hashlib.sha256).digest()
    return {"protected": protected_b64, "payload": payload_b64, "signature": b64e(mac)}
