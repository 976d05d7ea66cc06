"""Methods on POST-only resources (ACME-08).

RFC 8555 §6.3: accounts, orders, authorizations, challenges, certificates and
the other POST endpoints are read with POST-as-GET, never GET. Any other
method gets 405 with `Allow: POST` and a problem document (with a fresh
Replay-Nonce, like every ACME error) instead of aiohttp's bare 405, so a client
that forgot POST-as-GET learns why.
"""

from __future__ import annotations

from protocols.acme.errors import AcmeProblem
from protocols.base import Route

POST_REQUIRED_HANDLER = "post_required"


def post_only_fallbacks(routes: tuple[Route, ...]) -> tuple[Route, ...]:
    """One any-method route per path that only answers POST; it must be mounted after `routes`
    so the POST route keeps matching first."""
    other_methods = {r.path for r in routes if r.method != "POST"}
    paths = dict.fromkeys(r.path for r in routes if r.method == "POST" and r.path not in other_methods)
    return tuple(Route("*", path, POST_REQUIRED_HANDLER) for path in paths)


def post_required(method: str) -> AcmeProblem:
    return AcmeProblem(
        "malformed",
        f"{method} is not allowed on this resource: use POST, or POST-as-GET (an empty payload) "
        "to read it (RFC 8555 §6.3)",
        405,
        headers={"Allow": "POST"},
    )
