"""The PKCS#10 request inside a PKCSReq or RenewalReq, its signature checked against the profile.

cryptography calls a SHA-1 or MD5 CSR signature invalid outright, which would make a legacy
device's request look forged (badMessageCheck). So a CSR that `ca.csr.parse_csr` refuses for its
signature is checked again through `ca.sigalg.verify_signature`: with SHA-1 and MD5 allowed on a
profile with ``legacy = true``, refused as an algorithm (badAlg, SCEP-02) elsewhere; a signature
that really does not verify stays BAD_SIGNATURE. The one table of accepted algorithms decides.
"""

from __future__ import annotations

from cryptography import x509

from ca.csr import MAX_CSR_BYTES, parse_csr
from ca.errors import CAError, FailureReason
from ca.sigalg import verify_signature


def parse_scep_csr(der: bytes, *, legacy: bool) -> x509.CertificateSigningRequest:
    """A DER CSR whose signature verifies under the profile's algorithms."""
    try:
        return parse_csr(der)
    except CAError as exc:
        if exc.reason not in (FailureReason.BAD_SIGNATURE, FailureReason.BAD_ALGORITHM) or len(der) > MAX_CSR_BYTES:
            raise
        first = exc
    try:
        csr = x509.load_der_x509_csr(der)
        algorithm = csr.signature_algorithm_oid.dotted_string
        public_key = csr.public_key()
    except ValueError:
        raise first from None
    verify_signature(
        public_key, algorithm, None, csr.signature, csr.tbs_certrequest_bytes, allow_sha1=legacy, allow_md5=legacy
    )
    if not legacy:  # it verified where cryptography said no: still not an algorithm we accept here
        raise first
    return csr
