"""SCEP (RFC 8894): GetCACaps, GetCACert, GetNextCACert and PKIOperation (PKCSReq, RenewalReq,
CertPoll, GetCert, GetCRL) by GET and POST, at /scep, /scep/<profile> and the paths devices use
by default (/cgi-bin/pkiclient.exe, /certsrv/mscep/mscep.dll), on both listeners.

Enrolment is authorised by a challengePassword: a static one per profile, one-time ones
(`tetra scep challenge`), or a validation webhook. docs/scep.md describes it all.
"""

from protocols.base import ProtocolSpec
from protocols.scep.cli import COMMANDS
from protocols.scep.config import MAX_BODY_LIMIT, ScepConfig, parse_config
from protocols.scep.errors import http_error
from protocols.scep.handlers import ROUTES, ScepHandlers


def _labels(config: ScepConfig) -> dict[str, str]:
    return dict(config.labels)


SPEC = ProtocolSpec(
    name="scep",
    prefix="/scep",
    aliases=("/cgi-bin/pkiclient.exe", "/certsrv/mscep/mscep.dll"),
    routes=ROUTES,
    factory=ScepHandlers.create,
    parse_config=parse_config,
    listeners=("http", "https"),
    max_body=MAX_BODY_LIMIT,  # the server's cap; [scep] max_body (smaller) is checked by the handlers
    http_error=http_error,
    path_labels=_labels,
    cli=COMMANDS,
    cli_help="SCEP: one-time challenges",
)
