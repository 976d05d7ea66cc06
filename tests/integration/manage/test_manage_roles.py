"""OPS-01: every endpoint of the tuple, called by every role (and both kinds of guest), is
refused 403 exactly when the caller's permissions lack the endpoint's permission, and
otherwise gets past the permission check. Driven from `ENDPOINTS` itself, so a new endpoint
is covered the day it is declared."""

from __future__ import annotations

from pathlib import Path

from ca.operators.principal import Principal
from server.manage.api import ENDPOINTS
from server.manage.endpoint import Endpoint
from tests.integration.manage.conftest import Serve, manage_config
from tests.integration.manage.manage_support import audit_rows, last_seq
from tests.operator_tokens import bearer, make_token

# (role, teams, guest access)
CALLERS = [
    ("administrator", (), None),
    ("ra-officer", (), None),
    ("requester", ("web",), None),
    ("auditor", (), None),
    ("guest", ("web",), "read"),
    ("guest", ("web",), "request"),
]
ABSENT = "987654"  # an id no object has: an allowed call gets past the check and finds nothing


def _path(endpoint: Endpoint) -> str:
    path = endpoint.path
    for name in endpoint.path_params:
        path = path.replace("{" + name + "}", ABSENT)
    return "/api/v1" + path


async def test_every_endpoint_for_every_role(serve: Serve, ca_dir: Path, sqlite_url: str) -> None:
    """OPS-01: 403 `forbidden` if and only if the principal lacks the endpoint's permission;
    an endpoint without one answers everybody; no refused call changes anything."""
    client, ca = await serve(manage_config(ca_dir, sqlite_url))
    before = await last_seq(ca)
    checked = 0
    for role, teams, access in CALLERS:
        token = await make_token(ca, role, teams=teams, guest_access=access)
        principal: Principal = await ca.operators.tokens.authenticate(token)
        for endpoint in ENDPOINTS:
            body: dict[str, object] | None = {} if endpoint.body is not None else None
            resp = await client.request(endpoint.method, _path(endpoint), json=body, headers=bearer(token))
            document = await resp.json(content_type=None) if resp.status >= 400 else {}
            forbidden = resp.status == 403 and document.get("type") == "urn:tetra:problem:forbidden"
            allowed = endpoint.permission is None or principal.can(endpoint.permission)
            label = f"{role}/{access} {endpoint.method} {endpoint.path}: {resp.status} {document}"
            assert forbidden is not allowed, label
            assert resp.status != 401, label
            checked += 1
    assert checked == len(CALLERS) * len(ENDPOINTS)
    changes = [row for row in await audit_rows(ca, before) if not row.action.startswith(("user.", "token."))]
    assert changes == []
