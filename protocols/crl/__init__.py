"""CRL publication (RFC 5280 §5) at /crl: complete, delta and partitioned CRLs per issuing CA.

Generation is `ca.revocation.crl.CrlService`, run by the server's jobs (one leader at a
time) and by `tetra crl generate`; this package only serves what was published.
"""

from ca.revocation.settings import parse_crl
from protocols.base import ProtocolSpec
from protocols.crl.handlers import ROUTES, CrlHandlers

SPEC = ProtocolSpec(
    name="crl",
    prefix="/crl",
    routes=ROUTES,
    factory=CrlHandlers.create,
    parse_config=parse_crl,
    listeners=("http", "https"),
    max_body=1024,
)
