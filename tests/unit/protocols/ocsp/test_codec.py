"""OCSP codec: captured and built requests, every bad input, GET paths, HTTP answer headers."""

from __future__ import annotations

import base64
import datetime as dt
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from ca.revocation.asn1 import integer, seq, tlv
from ca.revocation.model import CertId, OcspAnswer, ResponseStatus, StatusQuery
from ca.revocation.ocsp_der import error_response
from protocols.ocsp import codec
from protocols.ocsp.errors import OcspError, render_status
from tests.revocation_support import multi_request_der

VECTORS = Path(__file__).resolve().parents[3] / "vectors" / "ocsp"
LIMIT = 128 * 1024


def _decode(der: bytes, max_certs: int = 8) -> StatusQuery:
    return codec.decode_request(der, max_bytes=LIMIT, max_certs=max_certs)


def _malformed(der: bytes, max_certs: int = 8) -> str:
    with pytest.raises(OcspError) as err:
        _decode(der, max_certs)
    assert err.value.status is ResponseStatus.MALFORMED_REQUEST
    return err.value.detail


@pytest.fixture(scope="module")
def pair() -> tuple[x509.Certificate, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "codec CA")])
    now = dt.datetime.now(dt.UTC)
    builder = x509.CertificateBuilder().issuer_name(name).public_key(key.public_key())
    builder = builder.not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
    ca = builder.subject_name(name).serial_number(1).sign(key, hashes.SHA256())
    leaf = builder.subject_name(name).serial_number(0x00F1E2D3C4B5A69788).sign(key, hashes.SHA256())
    return leaf, ca


def _request(
    pair: tuple[x509.Certificate, x509.Certificate],
    algorithm: hashes.HashAlgorithm = hashes.SHA1(),
    nonce: bytes | None = None,
) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(pair[0], pair[1], algorithm)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    from cryptography.hazmat.primitives.serialization import Encoding

    return builder.build().public_bytes(Encoding.DER)


def test_openssl_vectors_decode_to_exact_fields() -> None:
    """Captured `openssl ocsp -reqout` requests (tests/vectors/ocsp/README.md)."""
    with_nonce = _decode((VECTORS / "openssl-3.0-sha1-nonce.der").read_bytes())
    [cid] = with_nonce.cert_ids
    assert cid.hash_alg == "sha1" and cid.serial == 0x5A3C1E0F2B7D9E11
    assert cid.issuer_name_hash.hex() == "4b44b0d3969092602929f99044a1413433b98019"
    assert cid.issuer_key_hash.hex() == "69875f4c01d92e4240fe7ab9fb948f9fa6d06c38"
    assert with_nonce.nonce is not None and with_nonce.nonce[:2] == b"\x04\x10" and len(with_nonce.nonce) == 18
    plain = _decode((VECTORS / "openssl-3.0-sha256-no-nonce.der").read_bytes())
    assert plain.cert_ids[0].hash_alg == "sha256" and plain.nonce is None
    assert plain.cert_ids[0].issuer_name_hash.hex().startswith("76fb911961e3d0c2")


def test_sha1_and_sha256_cert_ids(pair: tuple[x509.Certificate, x509.Certificate]) -> None:
    """OCSP-07."""
    for algorithm, name in ((hashes.SHA1(), "sha1"), (hashes.SHA256(), "sha256")):
        [cid] = _decode(_request(pair, algorithm)).cert_ids
        assert cid.hash_alg == name and cid.serial == pair[0].serial_number


@pytest.mark.parametrize("size", [1, 16, 32])
def test_nonce_kept_verbatim(pair: tuple[x509.Certificate, x509.Certificate], size: int) -> None:
    """OCSP-08: the extnValue (an OCTET STRING of 1..32 octets) is what the response echoes."""
    nonce = bytes(range(size))
    assert _decode(_request(pair, nonce=nonce)).nonce == b"\x04" + bytes((size,)) + nonce


@pytest.mark.parametrize("size", [0, 33])
def test_nonce_out_of_range_is_malformed(pair: tuple[x509.Certificate, x509.Certificate], size: int) -> None:
    """OCSP-08: RFC 8954 §2.1 refuses 0 and more than 32 octets with malformedRequest."""
    assert "nonce" in _malformed(_request(pair, nonce=b"n" * size))


def test_garbage_truncated_trailing_and_empty(pair: tuple[x509.Certificate, x509.Certificate]) -> None:
    """OCSP-05: garbage body, a truncated request, trailing bytes, an empty body."""
    good = _request(pair)
    _malformed(b"this is not DER at all")
    _malformed(good[:-5])
    _malformed(good[: len(good) // 2])
    _malformed(good + b"\x00")
    _malformed(b"")
    _malformed(b"\x30\x84\xff\xff\xff\xff")  # length far past the end (DOS-03)
    _malformed(b"\x30\x80\x00\x00")  # indefinite length is not DER


def test_unsupported_cert_id_hash(pair: tuple[x509.Certificate, x509.Certificate]) -> None:
    """A CertID hash we cannot evaluate (SHA-224, or an unknown OID standing in for MD5) is
    malformedRequest: without the hash we cannot tell which CA is meant."""
    assert "hash" in _malformed(_request(pair, hashes.SHA224()))
    der = bytearray(_request(pair))
    at = der.find(bytes.fromhex("06052b0e03021a"))
    der[at : at + 7] = bytes.fromhex("06052b0e030203")  # 1.3.14.3.2.3: md5WithRSA, not a CertID hash
    assert "hash" in _malformed(bytes(der))


def test_several_cert_ids_up_to_the_cap() -> None:
    """OCSP-06: several CertIDs are answered up to the cap; one more is malformedRequest."""
    cids = [CertId("sha1", b"\x01" * 20, b"\x02" * 20, n) for n in range(1, 9)]
    query = _decode(multi_request_der(cids, nonce=b"z" * 16), max_certs=8)
    assert [c.serial for c in query.cert_ids] == list(range(1, 9)) and query.nonce == b"\x04\x10" + b"z" * 16
    assert "at most 8" in _malformed(multi_request_der([*cids, cids[0]]), max_certs=8)


def test_a_thousand_cert_ids_refused_before_parsing() -> None:
    """OCSP-06 / docs/reliability.md, demand 8: the count is read from the headers and refused quickly."""
    cids = [CertId("sha1", b"\x01" * 20, b"\x02" * 20, n) for n in range(1, 1001)]
    der = multi_request_der(cids)
    started = time.perf_counter()
    assert "1000 certificates" in _malformed(der, max_certs=8)
    assert time.perf_counter() - started < 0.1


def test_deep_nesting_is_refused_without_recursion() -> None:
    """DOS-02: 20,000 nested SEQUENCEs (as many as fit the body limit) are refused by the
    shape check before asn1crypto sees them."""
    inner = b""
    for _ in range(20_000):
        inner = tlv(0x30, inner)
    der = seq(seq(seq(seq(inner)), integer(1)))
    assert "deeper" in _malformed(der)


def test_body_over_the_limit(pair: tuple[x509.Certificate, x509.Certificate]) -> None:
    """OCSP-05: bigger than max_request_bytes is malformedRequest before any parsing."""
    with pytest.raises(OcspError):
        codec.decode_request(_request(pair) + b"\x00" * 100, max_bytes=64, max_certs=8)


def test_get_path_forms() -> None:
    """RFC 6960 A.1 GET: percent-escaped standard base64 (nginx), raw '/', '+', '=',
    URL-safe alphabet, missing padding and double escaping all decode to the same DER."""
    der = (VECTORS / "openssl-3.0-sha256-no-nonce.der").read_bytes()
    text = base64.b64encode(der).decode()
    assert "/" in text and "+" in text and text.endswith("==")
    forms = [
        "/" + quote(text, safe=""),  # nginx: ngx_escape_uri(NGX_ESCAPE_URI_COMPONENT)
        "/" + text,
        "/" + text.rstrip("="),
        "/" + base64.urlsafe_b64encode(der).decode(),
        "/" + quote(quote(text, safe=""), safe=""),
    ]
    for form in forms:
        # The server hands the handler the percent-decoded path.
        from urllib.parse import unquote

        assert codec.decode_get_path(unquote(form), max_bytes=LIMIT) == der


@pytest.mark.parametrize("path", ["/", "/!!!notbase64!!!", "/ab*cd", "/abcde"])
def test_get_path_that_does_not_decode(path: str) -> None:
    """OCSP-05: a base64 GET path that does not decode is malformedRequest."""
    with pytest.raises(OcspError) as err:
        codec.decode_get_path(path, max_bytes=LIMIT)
    assert err.value.status is ResponseStatus.MALFORMED_REQUEST


def test_answer_headers() -> None:
    """OCSP-12: GET answers of pre-signed responses carry RFC 9919 caching headers with
    max-age no later than nextUpdate; POST answers and fresh ones are not cached."""
    now = dt.datetime(2026, 11, 26, 12, 0, 0, tzinfo=dt.UTC)
    answer = OcspAnswer(
        b"der",
        ResponseStatus.SUCCESSFUL,
        now - dt.timedelta(hours=1),
        now + dt.timedelta(days=6),
        cacheable=True,
        etag='"abc"',
    )
    status, headers, body = codec.encode_answer(answer, get=True, now=now)
    assert status == 200 and body == b"der"
    assert headers["Content-Type"] == "application/ocsp-response"
    assert headers["Cache-Control"] == f"max-age={6 * 86400}, public, no-transform, must-revalidate"
    assert headers["Last-Modified"] == "Thu, 26 Nov 2026 11:00:00 GMT"
    assert headers["Expires"] == "Wed, 02 Dec 2026 12:00:00 GMT"
    assert headers["ETag"] == '"abc"'
    assert codec.encode_answer(answer, get=False, now=now)[1] == {"Content-Type": "application/ocsp-response"}
    fresh = OcspAnswer(b"der", ResponseStatus.SUCCESSFUL, now, now + dt.timedelta(days=7))
    assert codec.encode_answer(fresh, get=True, now=now)[1]["Cache-Control"] == "no-store"


def test_error_responses_are_status_only() -> None:
    """RFC 6960 §4.2.1: an unsuccessful response has no responseBytes; HTTP 200 carries it."""
    assert error_response(ResponseStatus.MALFORMED_REQUEST) == bytes.fromhex("30030a0101")
    rendered = render_status(ResponseStatus.UNAUTHORIZED)
    assert rendered.status == 200 and rendered.headers["Content-Type"] == "application/ocsp-response"
    parsed = ocsp.load_der_ocsp_response(rendered.body)
    assert parsed.response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED
