"""CRL publication (RFC 5280 §5) at /crl: complete, delta and partitioned CRLs per issuing CA.

Generation is `ca.revocation.crl.CrlService`, run by the server's jobs (one leader at a
time) and by `tetra crl generate`; this package only serves what was published.
"""

from ca.revocation.settings import parse_crl
from protocols.crl.handlers import ROUTES, CrlHandlers

SPEC = CrlHandlers.spec(ROUTES, parse_crl, max_body=1024)
