"""OPS-05: a bearer token is refused over plain HTTP from anywhere but loopback (it would cross
the network in clear), unless [manage] allow_plain_http says a TLS proxy fronts the server;
HTTPS and loopback pass. (Served end to end from a non-loopback address by
tests/integration/test_api_doc.py.)"""

from __future__ import annotations

import pytest

from server.manage.auth import check_transport
from server.manage.problems import Problem


@pytest.mark.parametrize(
    ("scheme", "remote", "allow", "passes"),
    [
        ("http", "192.0.2.7", False, False),
        ("http", "2001:db8::7", False, False),
        ("http", "", False, False),
        ("http", "not-an-address", False, False),
        ("http", "127.0.0.1", False, True),
        ("http", "::1", False, True),
        ("https", "192.0.2.7", False, True),
        ("http", "192.0.2.7", True, True),
    ],
)
def test_bearer_tokens_travel_over_tls_or_loopback(scheme: str, remote: str, allow: bool, passes: bool) -> None:
    if passes:
        check_transport(scheme, remote, allow)
        return
    with pytest.raises(Problem) as refused:
        check_transport(scheme, remote, allow)
    assert refused.value.status == 403 and refused.value.code == "transport"
    assert "HTTPS only" in refused.value.detail
