"""JWS and JWK codecs (RFC 7515/7517/7638/8037) against our encoder and against josepy's."""

from __future__ import annotations

import json

import josepy
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from protocols.acme.b64 import Base64Error, b64d, b64e
from protocols.acme.errors import AcmeProblem
from protocols.acme.jwk import jwk_from_key, parse_jwk
from protocols.acme.jws import SigningKey, parse_eab, parse_jws, sign_jws, sign_mac, verify, verify_mac

KEYS: list[SigningKey] = [
    ec.generate_private_key(ec.SECP256R1()),
    ec.generate_private_key(ec.SECP384R1()),
    rsa.generate_private_key(65537, 2048),
    ed25519.Ed25519PrivateKey.generate(),
]


@pytest.mark.parametrize("key", KEYS, ids=["ES256", "ES384", "RS256", "EdDSA"])
def test_sign_parse_verify_round_trip(key: SigningKey) -> None:
    body = sign_jws(
        key,
        b'{"a":1}',
        {"nonce": "n" * 22, "url": "https://x/acme/new-order", "jwk": jwk_from_key(key.public_key())},
    )
    msg = parse_jws(body)
    assert msg.payload == b'{"a":1}' and msg.url.endswith("new-order")
    verify(msg, parse_jwk(msg.jwk))
    tampered = json.loads(body)
    tampered["payload"] = b64e(b'{"a":2}')
    with pytest.raises(AcmeProblem) as err:
        verify(parse_jws(json.dumps(tampered).encode()), parse_jwk(msg.jwk))
    assert err.value.type == "malformed"


@pytest.mark.parametrize("key", KEYS[:3], ids=["ES256", "ES384", "RS256"])
def test_thumbprint_matches_josepy(key: SigningKey) -> None:
    """RFC 7638 thumbprints must agree with what certbot's library computes."""
    ours = parse_jwk(jwk_from_key(key.public_key()))
    theirs = josepy.jwk.JWK.load(
        key.public_key().public_bytes(
            __import__("cryptography.hazmat.primitives.serialization", fromlist=["x"]).Encoding.PEM,
            __import__(
                "cryptography.hazmat.primitives.serialization", fromlist=["x"]
            ).PublicFormat.SubjectPublicKeyInfo,
        )
    )
    assert ours.thumbprint == b64e(theirs.thumbprint())


def test_josepy_signed_jws_verifies() -> None:
    """A JWS made by josepy (certbot's acme library) verifies here (interop vector)."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = josepy.jwk.JWKEC(key=key)
    from acme import jws as acme_jws

    signed = acme_jws.JWS.sign(
        b'{"x":1}', key=jwk, alg=josepy.jwa.ES256, nonce=b"n" * 16, url="https://x/acme/new-account"
    )
    msg = parse_jws(signed.json_dumps().encode())
    verify(msg, parse_jwk(msg.jwk))


@pytest.mark.parametrize("text", ["YQ==", "a+b", "a/b", "a b", "a"])
def test_strict_base64url(text: str) -> None:
    with pytest.raises(Base64Error):
        b64d(text)


def test_b64_non_canonical_trailing_bits() -> None:
    assert b64d("YQ") == b"a"
    with pytest.raises(Base64Error):
        b64d("YR")


@pytest.mark.parametrize(
    ("jwk", "kind"),
    [
        ({"kty": "RSA", "n": b64e((2**1023 + 1).to_bytes(128, "big")), "e": "AQAB"}, "badPublicKey"),
        ({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}, "badPublicKey"),
        ({"kty": "EC", "crv": "P-256", "x": b64e(b"\x01" * 32), "y": b64e(b"\x02" * 32)}, "badPublicKey"),
        ({"kty": "oct", "k": "AA"}, "badPublicKey"),
        ({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"}, "malformed"),
        ("not an object", "malformed"),
    ],
)
def test_bad_jwks(jwk: object, kind: str) -> None:
    """ACME-02: small RSA, unsupported curves, points off the curve, private members."""
    with pytest.raises(AcmeProblem) as err:
        parse_jwk(jwk)
    assert err.value.type == kind


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        ({"alg": "none"}, "badSignatureAlgorithm"),
        ({"alg": "HS256"}, "badSignatureAlgorithm"),
        ({"alg": "ES256", "url": "u"}, "badNonce"),
        ({"alg": "ES256", "nonce": "n"}, "malformed"),
        ({"alg": "ES256", "nonce": "n", "url": "u"}, "malformed"),
        ({"alg": "ES256", "nonce": "n", "url": "u", "kid": "k", "jwk": {}}, "malformed"),
        ({"alg": "ES256", "nonce": "n", "url": "u", "kid": "k", "b64": False}, "malformed"),
    ],
)
def test_header_rules(header: dict[str, object], kind: str) -> None:
    body = json.dumps({"protected": b64e(json.dumps(header).encode()), "payload": "", "signature": ""}).encode()
    with pytest.raises(AcmeProblem) as err:
        parse_jws(body)
    assert err.value.type == kind


def test_duplicate_members_and_unprotected_header_refused() -> None:
    with pytest.raises(AcmeProblem):
        parse_jws(b'{"protected":"e30","protected":"e30","payload":"","signature":""}')
    with pytest.raises(AcmeProblem):
        parse_jws(b'{"protected":"e30","header":{},"payload":"","signature":""}')


def test_eab_mac() -> None:
    secret = b"k" * 32
    obj = sign_mac(secret, b'{"kty":"EC"}', {"kid": "key-1", "url": "https://x/acme/new-account"})
    msg = parse_eab(obj)
    verify_mac(msg, secret)
    with pytest.raises(AcmeProblem) as err:
        verify_mac(msg, b"other" * 8)
    assert err.value.type == "unauthorized"
