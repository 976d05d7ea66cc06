"""OCSP responder (RFC 6960, RFC 9919 profile, RFC 8954 nonces) at /ocsp, on both listeners.

The handlers only translate; `ca.revocation.ocsp.OcspService` looks statuses up and
signs. The server's jobs start the service (responder certificates, cache warm-up)
and feed it revocations from every process.
"""

from ca.revocation.settings import parse_ocsp
from protocols.ocsp.errors import http_error
from protocols.ocsp.handlers import ROUTES, OcspHandlers

# max_body beyond the request cap: a 1,000-CertID request is refused in OCSP terms.
SPEC = OcspHandlers.spec(ROUTES, parse_ocsp, max_body=256 * 1024, http_error=http_error)
