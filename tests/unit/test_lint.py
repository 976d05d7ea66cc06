"""The pkilint wrapper accepts well-formed artifacts, names the rule a bad one breaks, and
never lets garbage input escape as an exception."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from ca import lint
from ca.lint import LintFinding, lint_certificate, lint_crl, lint_ocsp_response
from tests.pkilint_check import (
    assert_certificate_lints_clean,
    assert_crl_lints_clean,
    assert_ocsp_lints_clean,
)

# A fixed instant keeps BR validity maxima (which change by date) from turning these into
# time bombs: pkilint judges validity against the certificate's own notBefore.
NOT_BEFORE = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)

ROOT_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tetra Test"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Tetra Test Root CA"),
    ]
)
RESPONDER_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tetra Test"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Tetra Test OCSP Responder"),
    ]
)
# Public-suffix hosts: pkilint's BR lint rejects internal names such as *.test in URLs.
CRL_URL = "http://crl.example.com/root.crl"
OCSP_URL = "http://ocsp.example.com/"
CA_ISSUERS_URL = "http://pki.example.com/root.cer"


def _key_usage(**set_bits: bool) -> x509.KeyUsage:
    bits = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    bits.update(set_bits)
    return x509.KeyUsage(**bits)


def _random_serial() -> int:
    """128 random bits, forced positive and non-zero."""
    return secrets.randbits(128) | 1


@dataclass(frozen=True)
class Issuer:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def aki(self) -> x509.AuthorityKeyIdentifier:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key())


@pytest.fixture(scope="module")
def root() -> Issuer:
    key = ec.generate_private_key(ec.SECP256R1())
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(ROOT_NAME)
        .issuer_name(ROOT_NAME)
        .public_key(key.public_key())
        .serial_number(_random_serial())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_BEFORE + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issuer(key, cert)


def _leaf_builder(
    root: Issuer,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    *,
    days: int = 90,
    with_san: bool = True,
    eku: Sequence[x509.ObjectIdentifier] = (ExtendedKeyUsageOID.SERVER_AUTH,),
) -> x509.CertificateBuilder:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.com")]))
        .issuer_name(root.cert.subject)
        .public_key(public_key)
        .serial_number(_random_serial())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_BEFORE + dt.timedelta(days=days) - dt.timedelta(seconds=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        .add_extension(root.aki, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.CRLDistributionPoints(
                [x509.DistributionPoint([x509.UniformResourceIdentifier(CRL_URL)], None, None, None)]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP,
                        x509.UniformResourceIdentifier(OCSP_URL),
                    ),
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.CA_ISSUERS,
                        x509.UniformResourceIdentifier(CA_ISSUERS_URL),
                    ),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier("2.23.140.1.2.1"), None)]),
            critical=False,
        )
    )
    if with_san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("example.com")]), critical=False)
    return builder


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def _leaf(root: Issuer, **kwargs: object) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _leaf_builder(root, key.public_key(), **kwargs)  # type: ignore[arg-type]
    return _der(builder.sign(root.key, hashes.SHA256()))


@pytest.fixture(scope="module")
def good_leaf(root: Issuer) -> bytes:
    return _leaf(root)


def _codes(findings: Sequence[LintFinding]) -> set[str]:
    return {f.code for f in findings}


# --- certificates ------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["pkix", "cabf-serverauth"])
def test_good_leaf_has_no_errors(good_leaf: bytes, profile: str) -> None:
    assert lint_certificate(good_leaf, profile=profile) == []
    assert_certificate_lints_clean(good_leaf, profile)


def test_root_has_no_errors(root: Issuer) -> None:
    assert_certificate_lints_clean(_der(root.cert), "pkix")
    assert_certificate_lints_clean(_der(root.cert), "cabf-serverauth", cabf_type="ROOT-CA")


def test_all_findings_variant_includes_lower_severities(good_leaf: bytes) -> None:
    everything = lint_certificate(good_leaf, profile="cabf-serverauth", errors_only=False)
    assert everything, "pkilint reports at least INFO-level findings for a good leaf"
    assert not any(f.is_error for f in everything)
    assert all("\n" not in str(f) for f in everything)


def test_leaf_without_san_fails_cabf(root: Issuer) -> None:
    findings = lint_certificate(_leaf(root, with_san=False), profile="cabf-serverauth")
    assert findings and all(f.is_error for f in findings)
    assert any("subject_altname_extension_absent" in f.code for f in findings), findings


def test_rsa_1024_leaf_fails_cabf(root: Issuer) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    der = _der(_leaf_builder(root, small.public_key()).sign(root.key, hashes.SHA256()))
    findings = lint_certificate(der, profile="cabf-serverauth")
    assert any("rsa" in f.code and "modulus" in f.code for f in findings), findings


def test_400_day_leaf_fails_cabf(root: Issuer) -> None:
    findings = lint_certificate(_leaf(root, days=400), profile="cabf-serverauth")
    assert any("validity_period_exceeds" in f.code for f in findings), findings


def test_email_protection_eku_fails_cabf(root: Issuer) -> None:
    eku = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION)
    findings = lint_certificate(_leaf(root, eku=eku), profile="cabf-serverauth")
    assert any("eku" in f.code for f in findings), findings


def test_issuer_adapter_returns_one_line_errors(root: Issuer, good_leaf: bytes) -> None:
    assert lint.certificate_lint_errors(good_leaf, "cabf-serverauth") == []
    errors = lint.certificate_lint_errors(_leaf(root, days=400), "cabf-serverauth")
    assert errors and all(e.startswith("ERROR ") and "\n" not in e for e in errors)


def test_assert_helper_lists_every_finding(root: Issuer) -> None:
    with pytest.raises(AssertionError) as caught:
        assert_certificate_lints_clean(_leaf(root, days=400), "cabf-serverauth")
    message = str(caught.value)
    assert "validity_period_exceeds" in message
    assert "ERROR" in message


@pytest.mark.parametrize(
    "garbage",
    [b"", b"garbage", b"\x30\x03\x02\x01\x05", b"\x30" * 5000, b"\x30\x80\x00\x00"],
)
def test_garbage_is_a_fatal_finding_not_an_exception(garbage: bytes) -> None:
    for findings in (
        lint_certificate(garbage),
        lint_certificate(garbage, profile="cabf-serverauth"),
        lint_crl(garbage),
        lint_ocsp_response(garbage),
    ):
        assert [f.severity for f in findings] == ["FATAL"]
        assert findings[0].is_error


def test_trailing_bytes_are_fatal(good_leaf: bytes) -> None:
    findings = lint_certificate(good_leaf + b"\x00")
    assert [f.severity for f in findings] == ["FATAL"]


def test_undetermined_cabf_type_falls_back_to_pkix(good_leaf: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    def cannot_tell(_doc: object) -> None:
        raise ValueError("no idea")

    monkeypatch.setattr("ca.lint.serverauth.determine_certificate_type", cannot_tell)
    everything = lint_certificate(good_leaf, profile="cabf-serverauth", errors_only=False)
    warning = [f for f in everything if f.code == lint.CODE_CABF_TYPE_UNDETERMINED]
    assert [f.severity for f in warning] == ["WARNING"]
    assert lint_certificate(good_leaf, profile="cabf-serverauth") == []


def test_linter_crash_is_a_fatal_finding(good_leaf: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    class Exploding:
        def validate(self, _root: object) -> None:
            raise RuntimeError("boom")

    monkeypatch.setattr(lint, "_pkix_certificate_validator", Exploding)
    findings = lint_certificate(good_leaf)
    assert [(f.severity, f.code) for f in findings] == [("FATAL", lint.CODE_LINTER_CRASHED)]


def test_unknown_profile_is_a_programming_error(good_leaf: bytes) -> None:
    with pytest.raises(ValueError):
        lint_certificate(good_leaf, profile="cabf")
    with pytest.raises(ValueError):
        lint_crl(good_leaf, profile="cabf-serverauth")


def test_validators_are_built_once() -> None:
    assert lint._pkix_certificate_validator() is lint._pkix_certificate_validator()


def test_concurrent_lints_match_serial(root: Issuer, good_leaf: bytes) -> None:
    bad = _leaf(root, days=400)
    inputs = [good_leaf, bad, b"garbage"] * 8
    serial = [lint_certificate(d, profile="cabf-serverauth", errors_only=False) for d in inputs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(
            pool.map(
                lambda d: lint_certificate(d, profile="cabf-serverauth", errors_only=False),
                inputs,
            )
        )
    assert parallel == serial


# --- CRLs --------------------------------------------------------------------------------


def _crl(root: Issuer, *, with_aki: bool = True, reason: x509.ReasonFlags | None = None) -> bytes:
    entry = (
        x509.RevokedCertificateBuilder()
        .serial_number(_random_serial())
        .revocation_date(NOT_BEFORE + dt.timedelta(days=1))
    )
    if reason is not None:
        entry = entry.add_extension(x509.CRLReason(reason), critical=False)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(root.cert.subject)
        .last_update(NOT_BEFORE + dt.timedelta(days=2))
        .next_update(NOT_BEFORE + dt.timedelta(days=9))
        .add_extension(x509.CRLNumber(7), critical=False)
        .add_revoked_certificate(entry.build())
    )
    if with_aki:
        builder = builder.add_extension(root.aki, critical=False)
    return builder.sign(root.key, hashes.SHA256()).public_bytes(Encoding.DER)


@pytest.mark.parametrize("profile", ["pkix", "cabf"])
def test_good_crl_is_clean(root: Issuer, profile: str) -> None:
    der = _crl(root, reason=x509.ReasonFlags.key_compromise)
    assert lint_crl(der, profile=profile) == []
    assert_crl_lints_clean(der, profile)


def test_crl_without_aki_fails(root: Issuer) -> None:
    findings = lint_crl(_crl(root, with_aki=False))
    assert any("authority_key_identifier" in f.code for f in findings), findings


def test_br_crl_rejects_certificate_hold(root: Issuer) -> None:
    der = _crl(root, reason=x509.ReasonFlags.certificate_hold)
    assert lint_crl(der) == []
    assert any("reason_code" in f.code for f in lint_crl(der, profile="cabf"))


# --- OCSP --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def responder(root: Issuer) -> Issuer:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(RESPONDER_NAME)
        .issuer_name(root.cert.subject)
        .public_key(key.public_key())
        .serial_number(_random_serial())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_BEFORE + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(root.aki, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(root.key, hashes.SHA256())
    )
    return Issuer(key, cert)


def test_delegated_responder_certificate_is_clean(responder: Issuer) -> None:
    der = _der(responder.cert)
    for profile in ("pkix", "cabf-serverauth"):
        assert lint.lint_ocsp_responder_certificate(der, profile=profile) == []
    # auto-detection picks the same BR type from the OCSPSigning EKU
    assert lint_certificate(der, profile="cabf-serverauth") == []


@pytest.mark.parametrize("responder_id", [ocsp.OCSPResponderEncoding.HASH, ocsp.OCSPResponderEncoding.NAME])
def test_delegated_ocsp_response_is_clean(
    root: Issuer, responder: Issuer, good_leaf: bytes, responder_id: ocsp.OCSPResponderEncoding
) -> None:
    response = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=x509.load_der_x509_certificate(good_leaf),
            issuer=root.cert,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=NOT_BEFORE + dt.timedelta(days=1),
            next_update=NOT_BEFORE + dt.timedelta(days=5),
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(responder_id, responder.cert)
        .certificates([responder.cert])
        .sign(responder.key, hashes.SHA256())
    )
    der = response.public_bytes(Encoding.DER)
    assert lint_ocsp_response(der) == []
    assert_ocsp_lints_clean(der, responder_profile="cabf-serverauth")


def test_ocsp_response_with_negative_validity_fails(root: Issuer, good_leaf: bytes) -> None:
    response = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=x509.load_der_x509_certificate(good_leaf),
            issuer=root.cert,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=NOT_BEFORE + dt.timedelta(days=5),
            next_update=NOT_BEFORE + dt.timedelta(days=1),
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, root.cert)
        .sign(root.key, hashes.SHA256())
    )
    findings = lint_ocsp_response(response.public_bytes(Encoding.DER))
    assert any("validity" in f.code for f in findings), findings


def test_unsuccessful_ocsp_response_is_clean() -> None:
    der = ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(Encoding.DER)
    assert_ocsp_lints_clean(der)


# --- indexed traversal (the lint gate's speed-up must not change a single finding) -------------


def _finding_tuples(results: Sequence[object]) -> list[tuple[str, str, str, str | None]]:
    """Every finding of a pkilint run, in order: validator, node path, code, message."""
    out = []
    for result in results:
        for description in result.finding_descriptions:  # type: ignore[attr-defined]
            out.append(
                (
                    result.validator.name,  # type: ignore[attr-defined]
                    str(result.node.path),  # type: ignore[attr-defined]
                    str(description.finding.code),
                    description.message,
                )
            )
    return out


def _stock_and_indexed(validator_factory: object, document_cls: object, der: bytes) -> tuple[list, list]:  # type: ignore[type-arg]
    """The same validator composition twice: as pkilint builds it, and with Tetra's indexed traversal."""
    results = []
    for indexed in (False, True):
        validator = validator_factory()  # type: ignore[operator]
        if indexed:
            lint._index_traversal(validator)
        doc = document_cls("x", der, "x")  # type: ignore[operator]
        doc.decode()
        results.append(_finding_tuples(validator.validate(doc.root)))
    return results[0], results[1]


def _bad_leaves(root: Issuer) -> list[bytes]:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    eku = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION)
    return [
        _leaf(root, days=400),
        _leaf(root, with_san=False),
        _leaf(root, eku=eku),
        _der(_leaf_builder(root, small.public_key()).sign(root.key, hashes.SHA256())),
    ]


@pytest.mark.parametrize("cabf_type", ["DV-FINAL-CERTIFICATE", "OV-FINAL-CERTIFICATE", "OCSP-RESPONDER", None])
def test_indexed_traversal_matches_pkilint(root: Issuer, good_leaf: bytes, cabf_type: str | None) -> None:
    """CORE-03 (lint gate): the indexed traversal yields pkilint's findings exactly, order included,
    for clean and for faulty certificates, BR types and RFC 5280 alike."""
    from pkilint.cabf import serverauth
    from pkilint.cabf.serverauth import serverauth_constants
    from pkilint.pkix import certificate, extension, name

    def factory() -> object:
        if cabf_type is None:
            return certificate.create_pkix_certificate_validator_container(
                certificate.create_decoding_validators(name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS),
                [
                    certificate.create_issuer_validator_container([]),
                    certificate.create_validity_validator_container(),
                    certificate.create_subject_validator_container([]),
                    certificate.create_extensions_validator_container([]),
                    certificate.create_spki_validator_container([]),
                ],
            )
        kind = serverauth_constants.CertificateType.from_option_str(cabf_type)
        return certificate.create_pkix_certificate_validator_container(
            serverauth.create_decoding_validators(), serverauth.create_validators(kind)
        )

    compared = 0
    for der in [good_leaf, root.cert.public_bytes(Encoding.DER), *_bad_leaves(root)]:
        stock, indexed = _stock_and_indexed(factory, certificate.RFC5280Certificate, der)
        assert indexed == stock
        compared += len(stock)
    assert compared >= 5  # the certificates above do produce findings to compare


def test_indexed_crl_traversal_matches_pkilint(root: Issuer) -> None:
    from pkilint import pkix
    from pkilint.pkix import crl, extension, name

    def factory() -> object:
        return crl.create_pkix_crl_validator_container(
            [
                pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
                pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS),
            ],
            [
                crl.create_issuer_validator_container([]),
                crl.create_validity_validator_container([]),
                crl.create_extensions_validator_container([]),
            ],
        )

    for der in (_crl(root, reason=x509.ReasonFlags.key_compromise), _crl(root, with_aki=False)):
        stock, indexed = _stock_and_indexed(factory, crl.RFC5280CertificateList, der)
        assert indexed == stock


def test_cached_validators_use_the_indexed_traversal_and_still_refuse(root: Issuer) -> None:
    """CORE-03: the gate's cached validators are indexed, and a bad certificate is still refused by them."""
    lint.warm_up()
    validator, _ = lint._cabf_certificate_linter(lint._resolve_cabf_type("DV-FINAL-CERTIFICATE"))
    assert "_validate_rec" in vars(validator)
    for der in _bad_leaves(root):
        assert lint.has_errors(lint_certificate(der, profile="cabf-serverauth", cabf_type="DV-FINAL-CERTIFICATE"))


def test_unverifiable_match_override_is_never_filtered() -> None:
    """A validator whose match() may accept what NodeVisitor.match refuses is offered every node."""
    from pkilint import validation as pkilint_validation

    class Lenient(pkilint_validation.Validator):  # type: ignore[misc]  # pkilint has no type hints
        def match(self, node: Any) -> bool:
            return True

    class Gated(pkilint_validation.Validator):  # type: ignore[misc]
        def match(self, node: Any) -> bool:
            if not super().match(node):
                return False
            return True

    lenient = Lenient(path="certificate.tbsCertificate.serialNumber")
    gated = Gated(path="certificate.tbsCertificate.serialNumber")
    assert lint._may_match(lenient, object, "certificate.tbsCertificate.version")
    assert not lint._may_match(gated, object, "certificate.tbsCertificate.version")
    assert lint._may_match(gated, object, "certificate.tbsCertificate.serialNumber")


def test_reference_traversal_is_pkilints_own(good_leaf: bytes) -> None:
    """The tests' lint checks run pkilint's stock traversal; the gate keeps the indexed one."""
    from ca.lint import _pkix_certificate_validator, reference_traversal

    indexed = _pkix_certificate_validator()
    with reference_traversal():
        stock = _pkix_certificate_validator()
        assert lint_certificate(good_leaf, profile="pkix") == []
    assert stock is not indexed
    assert "_validate_rec" in vars(indexed) and "_validate_rec" not in vars(stock)
    assert _pkix_certificate_validator() is indexed
