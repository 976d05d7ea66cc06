"""The management API next to the public protocols in one in-process app, for the tests that
enrol or revoke through /api/v1 on the way to what they check (OCSP, CRLs, rollover, faults).

The app is served through a listener named "http", as `run_server` names the public plain
HTTP one (tests/manage_server.py), and its config says `[manage] also_on = ["http"]`
(MANAGE_ON_HTTP): /api/v1 and the protocols answer on the same test client, as they do on a
server configured so. The token is a real administrator's, made by the user and token stores.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from server.app import CA
from tests.manage_server import ListenerTestServer
from tests.operator_tokens import bearer, make_token

Client = TestClient[Any, Any]
ClientFactory = Callable[..., Awaitable[Client]]

MANAGE_ON_HTTP = {"TETRA_MANAGE__ALSO_ON": '["http"]'}  # read_config's environ: /api/v1 on the HTTP listener


async def serve_on_http(aiohttp_client: ClientFactory, app: web.Application) -> tuple[Client, dict[str, str]]:
    """The app served through its public HTTP listener, and an administrator's Authorization header."""
    client = await aiohttp_client(ListenerTestServer(app, "http"))
    return client, bearer(await make_token(app[CA]))
