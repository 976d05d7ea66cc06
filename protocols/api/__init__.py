"""Operator REST API (JSON over HTTPS, bearer token): enroll, poll, revoke.

Small on purpose: it is how automation and the multi-instance tests drive the
core over HTTP until the inventory API grows around it.
"""

from protocols.api.handlers import ROUTES, ApiHandlers, http_error, parse_config
from protocols.base import ProtocolSpec

SPEC = ProtocolSpec(
    name="api",
    prefix="/api/v1",
    routes=ROUTES,
    factory=ApiHandlers.create,
    parse_config=parse_config,
    listeners=("https", "http"),
    max_body=128 * 1024,
    http_error=http_error,
)
