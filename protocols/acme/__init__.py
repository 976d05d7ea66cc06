"""ACME (RFC 8555) with http-01, dns-01, tls-alpn-01 (RFC 8737), IP identifiers (RFC 8738),
external account binding, renewal information (RFC 9773) and profiles.

The server mounts it at /acme; `AcmeHandlers.create` builds it from the
server's context and the parsed [acme] section.
"""

from protocols.acme.cli import COMMANDS
from protocols.acme.config import parse_config
from protocols.acme.errors import http_error
from protocols.acme.handlers import ROUTES, AcmeHandlers
from protocols.acme.methods import post_only_fallbacks
from protocols.base import ProtocolSpec

SPEC = ProtocolSpec(
    name="acme",
    prefix="/acme",
    routes=ROUTES + post_only_fallbacks(ROUTES),
    factory=AcmeHandlers.create,
    parse_config=parse_config,
    listeners=("https", "http"),
    max_body=64 * 1024,
    http_error=http_error,
    count_refusal=AcmeHandlers.count_refusal,
    jobs=AcmeHandlers.jobs,
    cli=COMMANDS,
    cli_help="ACME: external account keys, renewal information",
)
