"""EST (RFC 7030, with RFC 8951's clarifications): cacerts, simpleenroll, simplereenroll,
serverkeygen and csrattrs under /.well-known/est/ and /.well-known/est/<label>/; fullcmc 501.

Clients authenticate with a TLS client certificate (Tetra's, or an external anchor's for
IDevID bootstrap) or HTTP Basic (`tetra est user add`). docs/est.md describes it all.
"""

from protocols.base import ProtocolSpec
from protocols.est.cli import COMMANDS
from protocols.est.codec import MAX_BODY
from protocols.est.config import EstConfig, parse_config
from protocols.est.errors import http_error
from protocols.est.handlers import ROUTES, EstHandlers


def _labels(config: EstConfig) -> dict[str, str]:
    return dict(config.labels)


def _anchor_files(config: EstConfig) -> tuple[str, ...]:
    return tuple(str(path) for path in config.anchor_files())


SPEC = ProtocolSpec(
    name="est",
    prefix="/.well-known/est",
    routes=ROUTES,
    factory=EstHandlers.create,
    parse_config=parse_config,
    listeners=("https", "http"),
    max_body=MAX_BODY,
    http_error=http_error,
    path_labels=_labels,
    tls_client_anchors=_anchor_files,
    cli=COMMANDS,
    cli_help="EST: HTTP Basic users",
)
