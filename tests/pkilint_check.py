"""Assertions that an artifact a test produced passes pkilint with no errors.

Every certificate, CRL and OCSP response made in any test goes through one of these, so
the failure message lists every finding (warnings too, for context) in one place. They use
pkilint's own traversal (`reference_traversal`), not the indexed one the issuance gate runs,
so the check does not share the code it checks.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from ca.lint import (
    LintFinding,
    format_findings,
    has_errors,
    lint_certificate,
    lint_crl,
    lint_ocsp_responder_certificate,
    lint_ocsp_response,
    reference_traversal,
)

__all__ = [
    "assert_certificate_lints_clean",
    "assert_crl_lints_clean",
    "assert_ocsp_lints_clean",
]


def _fail_on_errors(kind: str, profile: str, findings: list[LintFinding]) -> None:
    if has_errors(findings):
        raise AssertionError(f"pkilint ({profile}) found errors in the {kind}:\n{format_findings(findings)}")


def assert_certificate_lints_clean(der: bytes, profile: str = "pkix", *, cabf_type: str | None = None) -> None:
    """Fail, listing every finding, if the certificate has any ERROR or FATAL finding."""
    with reference_traversal():
        findings = lint_certificate(der, profile=profile, errors_only=False, cabf_type=cabf_type)
    _fail_on_errors("certificate", profile, findings)


def assert_crl_lints_clean(der: bytes, profile: str = "pkix") -> None:
    """Fail, listing every finding, if the CRL has any ERROR or FATAL finding."""
    with reference_traversal():
        findings = lint_crl(der, profile=profile, errors_only=False)
    _fail_on_errors("CRL", profile, findings)


def _embedded_certificates(der: bytes) -> list[bytes]:
    """Certificates carried in a successful response; unparsable input was already linted."""
    try:
        response = ocsp.load_der_ocsp_response(der)
        if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            return []
        certs: list[x509.Certificate] = response.certificates
    except ValueError:
        return []
    return [c.public_bytes(Encoding.DER) for c in certs]


def assert_ocsp_lints_clean(der: bytes, *, responder_profile: str | None = "pkix") -> None:
    """Fail if the OCSP response, or a responder certificate embedded in it, has errors.

    The responder certificate is an artifact too, but pkilint's OCSP linter does not look
    inside ``certs``; so each one is linted as a delegated responder certificate under
    ``responder_profile`` (``None`` skips that).
    """
    with reference_traversal():
        findings = lint_ocsp_response(der, errors_only=False)
    _fail_on_errors("OCSP response", "pkix", findings)
    if responder_profile is None:
        return
    for index, cert_der in enumerate(_embedded_certificates(der)):
        with reference_traversal():
            cert_findings = lint_ocsp_responder_certificate(cert_der, profile=responder_profile, errors_only=False)
        _fail_on_errors(f"OCSP response's responder certificate #{index}", responder_profile, cert_findings)
