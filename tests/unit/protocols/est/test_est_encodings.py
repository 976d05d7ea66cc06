"""EST's encodings (EST-15), PoP check, csrattrs (EST-10), key-encryption requests (EST-13) and
config, without a server (RFC 7030, RFC 8951)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AttributeOID, NameOID, ObjectIdentifier
from multidict import CIMultiDict, CIMultiDictProxy

from ca.errors import CAError, ConfigError, FailureReason
from ca.profiles.loader import parse_profile
from ca.tomlread import Table
from protocols.base import WireRequest
from protocols.est.codec import decode_base64, encode_base64, request_der
from protocols.est.config import parse_config
from protocols.est.csrattrs import CsrAttrs, csr_attributes
from protocols.est.errors import EstError, render_error
from protocols.est.keygen import OID_ASYMMETRIC_DECRYPT_KEY_ID, OID_DECRYPT_KEY_ID, requested_key_encryption
from protocols.est.pop import check_linked


def _csr(attributes: list[tuple[ObjectIdentifier, bytes]] = ()) -> x509.CertificateSigningRequest:  # type: ignore[assignment]
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unit.example.com")])
    )
    for oid, value in attributes:
        builder = builder.add_attribute(oid, value)
    return builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())


def _request(body: bytes, content_type: str | None) -> WireRequest:
    headers = CIMultiDict({"Content-Type": content_type} if content_type is not None else {})
    return WireRequest("POST", "/simpleenroll", {}, CIMultiDictProxy(headers), body)


def test_base64_with_or_without_line_breaks() -> None:
    """RFC 8951 §3.2: line breaks (CRLF or LF) or none, all the same; not base64: 400."""
    der = bytes(range(256)) * 3
    lined = encode_base64(der)
    assert all(len(line) <= 64 for line in lined.split(b"\r\n"))
    for body in (lined, lined.replace(b"\r\n", b"\n"), base64.b64encode(der)):
        assert decode_base64(body, "test") == der
    for bad in (b"", b"   ", b"not*base64", b"QUJ"):
        with pytest.raises(EstError) as err:
            decode_base64(bad, "test")
        assert err.value.status == 400


def test_content_type_is_checked_and_its_parameters_ignored() -> None:
    """EST-07: application/pkcs10 (parameters allowed, any case); another type or none: 415."""
    body = base64.b64encode(b"\x30\x00")
    assert request_der(_request(body, "Application/PKCS10; charset=us-ascii")) == b"\x30\x00"
    for wrong in ("application/pkcs7-mime", "text/plain", None):
        with pytest.raises(EstError) as err:
            request_der(_request(body, wrong))
        assert err.value.status == 415


def test_pop_linking() -> None:
    """EST-08: the session's tls-unique in challengePassword passes; another value, none, or a
    session without tls-unique (TLS 1.3) is refused with its reason."""
    unique = b"\x01" * 12
    linked = _csr([(AttributeOID.CHALLENGE_PASSWORD, base64.b64encode(unique))])
    check_linked(linked, unique)
    with pytest.raises(EstError, match="not this TLS session's tls-unique"):
        check_linked(linked, b"\x02" * 12)
    with pytest.raises(EstError, match="challengePassword"):
        check_linked(_csr(), unique)
    with pytest.raises(EstError, match=r"TLS 1\.3"):
        check_linked(linked, None)


def test_csrattrs_follow_the_profile() -> None:
    profile = parse_profile({"keys": {"allowed": ["ec-p256", "ec-p384", "rsa-2048"]}}, "t", "t.toml")
    parsed = CsrAttrs.load(csr_attributes(profile, pop_required=True))
    oids = [
        item.chosen.native if isinstance(item.chosen, core.ObjectIdentifier) else item.chosen["type"].native
        for item in parsed
    ]
    assert oids[0] == "1.2.840.113549.1.9.7"  # challengePassword
    assert "1.2.840.10045.2.1" in oids and "1.2.840.113549.1.1.1" in oids
    assert b"challengePassword" not in csr_attributes(profile, pop_required=False)
    ec_attribute = next(i.chosen for i in parsed if not isinstance(i.chosen, core.ObjectIdentifier))
    assert set(ec_attribute["values"].native) == {"1.2.840.10045.3.1.7", "1.3.132.0.34"}


def test_key_encryption_requests_are_recognised() -> None:
    """RFC 7030 §4.4.1: DecryptKeyIdentifier / AsymmetricDecryptKeyIdentifier in the CSR."""
    assert requested_key_encryption(_csr()) is None
    for oid, name in ((OID_DECRYPT_KEY_ID, "DecryptKeyIdentifier"), (OID_ASYMMETRIC_DECRYPT_KEY_ID, "Asymmetric")):
        assert name in (requested_key_encryption(_csr([(ObjectIdentifier(oid), b"key-1")])) or "")


def test_config(tmp_path: Path) -> None:
    source = str(tmp_path / "tetra.toml")
    cfg = parse_config(Table({"labels": {"iot": "device"}, "profiles": {"device": {"pop": "required"}}}, source))
    assert cfg.labels == {"iot": "device"} and cfg.settings("device").pop_required
    assert not cfg.settings("other").pop_required
    for bad in ({"labels": {"iot": 3}}, {"profiles": {"d": {"pop": "maybe"}}}, {"retry_after": 0}, {"typo": 1}):
        with pytest.raises(ConfigError):
            parse_config(Table(bad, source))
    with pytest.raises(ConfigError, match="cannot read"):
        parse_config(Table({"profiles": {"d": {"trust_anchors": ["missing.pem"]}}}, source))


def test_errors_are_plain_text_with_their_status() -> None:
    reply = render_error(CAError("no", FailureReason.REJECTED_BY_POLICY))
    assert reply.status == 403 and reply.headers["Content-Type"].startswith("text/plain")
    unavailable = render_error(CAError("later", FailureReason.UNAVAILABLE))
    assert unavailable.status == 503 and unavailable.headers["Retry-After"] == "30"
