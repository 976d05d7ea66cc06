"""OPS-05: a management API bearer token is refused over plain HTTP from anywhere but loopback
(it would cross the network in clear), unless [manage] allow_plain_http says a TLS proxy fronts
it; HTTPS and loopback are served. The router makes this check before it looks at the token
(server/manage/router.py), so a refused request never reaches the token store."""

from __future__ import annotations

import pytest

from server.manage.auth import check_transport
from server.manage.problems import Problem


@pytest.mark.parametrize(
    ("scheme", "remote", "allow", "served"),
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
def test_bearer_tokens_travel_over_tls_or_loopback(scheme: str, remote: str, allow: bool, served: bool) -> None:
    if served:
        check_transport(scheme, remote, allow)
        return
    with pytest.raises(Problem) as refused:
        check_transport(scheme, remote, allow)
    document = refused.value.document()
    assert refused.value.status == 403 and document["type"] == "urn:tetra:problem:transport"
    assert "HTTPS only" in document["detail"]
