"""OPS-05: the operator API's bearer token is refused over plain HTTP from anywhere but loopback
(it would cross the network in clear), unless [api] allow_plain_http says a TLS proxy fronts it;
HTTPS and loopback are served. The refusal comes before the token is even compared."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from protocols.api.handlers import ApiHandlers
from protocols.base import WireRequest

TOKEN = b"transport-test-token"


def request(scheme: str, remote: str) -> WireRequest:
    headers = {"Authorization": f"Bearer {TOKEN.decode()}"}
    return WireRequest("GET", "/requests/7", {}, headers, b"", {"id": "7"}, remote=remote, scheme=scheme)


class Core:
    """Answers the one call a served poll makes, so a request that passes transport checks is seen to."""

    def __init__(self) -> None:
        self.polled: list[int] = []

    async def poll(self, request_id: int) -> Any:
        from ca.errors import CAError, FailureReason

        self.polled.append(request_id)
        raise CAError("no such request", FailureReason.UNKNOWN_CERTIFICATE)


@pytest.mark.parametrize(
    ("scheme", "remote", "allow", "served"),
    [
        ("http", "192.0.2.7", False, False),
        ("http", "2001:db8::7", False, False),
        ("http", "", False, False),
        ("http", "127.0.0.1", False, True),
        ("http", "::1", False, True),
        ("https", "192.0.2.7", False, True),
        ("http", "192.0.2.7", True, True),
    ],
)
async def test_bearer_tokens_travel_over_tls_or_loopback(scheme: str, remote: str, allow: bool, served: bool) -> None:
    core = Core()
    handlers = ApiHandlers(cast(Any, core), TOKEN, allow_plain_http=allow)
    reply = await handlers.poll(request(scheme, remote))
    if served:
        assert reply.status == 404 and core.polled == [7]
    else:
        assert reply.status == 403 and core.polled == []
        assert "HTTPS only" in json.loads(reply.body)["detail"]
