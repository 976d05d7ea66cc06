"""CMP (RFC 9810, Lightweight CMP Profile RFC 9483, algorithms RFC 9481, HTTP transfer RFC 9811):
ir, cr, p10cr, kur, rr, certConf, pollReq and genm at POST /.well-known/cmp and
/.well-known/cmp/p/<label>, on both listeners.

Requests are MAC-protected with a shared secret (`tetra cmp secret add REF`) or signed by a
trusted certificate; replies are protected the same way. protocols/cmp/responder.py gives the
order every message goes through; docs/cmp.md describes it all.
"""

from collections.abc import Sequence
from typing import Any

from protocols.base import BackgroundJob, ProtocolContext, ProtocolSpec, Route, WireResponse
from protocols.cmp.cli import COMMANDS
from protocols.cmp.config import MAX_BODY_LIMIT, CmpConfig, parse_config
from protocols.cmp.transactions import CmpTransactionRow  # noqa: F401  (declares its table, as every protocol does on import)

ROUTES = (Route("POST", "", "post"), Route("POST", "/p/{label}", "post"))


# The handlers (and the pyasn1 CMP modules under them, ~0.9 s to import) load when the server
# builds them, not when a `tetra` command only reads the protocol's config and commands.
def _create(ctx: ProtocolContext[Any]) -> Any:
    from protocols.cmp.handlers import CmpHandlers

    return CmpHandlers.create(ctx)


def _jobs(handlers: Any) -> Sequence[BackgroundJob]:
    from protocols.cmp.handlers import CmpHandlers

    return CmpHandlers.jobs(handlers)


def _labels(config: CmpConfig) -> dict[str, str]:
    return dict(config.labels)


def _http_error(status: int, reason: str) -> WireResponse:
    """What the server answers under /.well-known/cmp when no handler does (404, 405, 413) or a
    handler failed unexpectedly (500): plain text, as RFC 9811 leaves HTTP errors to HTTP."""
    return WireResponse.text(status, f"{reason}\n")


SPEC = ProtocolSpec(
    name="cmp",
    prefix="/.well-known/cmp",
    routes=ROUTES,
    factory=_create,
    parse_config=parse_config,
    listeners=("http", "https"),
    max_body=MAX_BODY_LIMIT,  # the server's cap; [cmp] max_body (smaller) is checked per message
    http_error=_http_error,
    path_labels=_labels,
    jobs=_jobs,
    cli=COMMANDS,
    cli_help="CMP: shared secrets for MAC-protected requests",
)
