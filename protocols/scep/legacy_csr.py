"""PKCS#10 requests from legacy SCEP clients: SHA-1 and MD5 signatures, checked on purpose.

cryptography refuses to call a SHA-1 or MD5 CSR signature valid, so on a profile with
``legacy = true`` (and only there) a CSR that `ca.csr.parse_csr` refuses for its algorithm is
verified again through `ca.sigalg.verify_signature` with those hashes allowed explicitly: the one
table of accepted algorithms stays the one place that says so (SCEP-02).
"""

from __future__ import annotations

from cryptography import x509

from ca.csr import MAX_CSR_BYTES, parse_csr
from ca.errors import CAError, FailureReason
from ca.sigalg import verify_signature


def parse_legacy_csr(der: bytes) -> x509.CertificateSigningRequest:
    """A DER CSR whose signature verifies, SHA-1 and MD5 included."""
    try:
        return parse_csr(der)
    except CAError as exc:
        if exc.reason not in (FailureReason.BAD_SIGNATURE, FailureReason.BAD_ALGORITHM) or len(der) > MAX_CSR_BYTES:
            raise
    try:
        csr = x509.load_der_x509_csr(der)
        algorithm = csr.signature_algorithm_oid.dotted_string
    except ValueError as exc:
        raise CAError(f"not a PKCS#10 CSR: {exc}", FailureReason.BAD_CSR) from None
    verify_signature(
        csr.public_key(),
        algorithm,
        None,
        csr.signature,
        csr.tbs_certrequest_bytes,
        allow_sha1=True,
        allow_md5=True,
    )
    return csr
