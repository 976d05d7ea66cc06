"""Discovery targets: port lists, target specs, the cap and the allow-list, all checked before any
packet leaves (CLM-05)."""

from __future__ import annotations

import ipaddress
import time
import tracemalloc

import pytest

from server.discovery.targets import Endpoint, TargetError, expand_targets, parse_ports


def test_port_lists() -> None:
    """Numbers and ranges, in the order given, each port once."""
    assert parse_ports("443") == [443]
    assert parse_ports("443, 8443,1000-1002,443") == [443, 8443, 1000, 1001, 1002]
    assert parse_ports("1-3,65535") == [1, 2, 3, 65535]


@pytest.mark.parametrize("text", ["", "0", "65536", "10-5", "https", "1-", "-5", "443,,80", "1.5", "1-2-3"])
def test_bad_port_lists_are_refused(text: str) -> None:
    """Each bad list is refused with a one-line message quoting it (CLM-05)."""
    with pytest.raises(TargetError) as caught:
        parse_ports(text)
    message = str(caught.value)
    assert repr(text) in message and "\n" not in message


def test_a_range_over_the_cap_is_refused_without_being_listed() -> None:
    """A /8 (16 million hosts) or an IPv6 /64 against a cap of 65536: refused in milliseconds and
    without memory to speak of, so the count came before any list (CLM-05)."""
    tracemalloc.start()
    started = time.monotonic()
    for spec in ("10.0.0.0/8", "fd00::/64"):
        with pytest.raises(TargetError, match=r"more than the cap of 65536"):
            expand_targets([spec], [443], cap=65536)
    took = time.monotonic() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert took < 0.1 and peak < 100_000


def test_the_cap_counts_every_spec_and_port() -> None:
    """Two /30s (two hosts each) on three ports make 12 endpoints: a cap of 12 passes, 11 does not."""
    specs = ["192.0.2.0/30", "198.51.100.4/30"]
    assert len(expand_targets(specs, [1, 2, 3], cap=12)) == 12
    with pytest.raises(TargetError, match="the targets make 12 endpoints, more than the cap of 11"):
        expand_targets(specs, [1, 2, 3], cap=11)
    with pytest.raises(TargetError, match="more than the cap of 1"):
        expand_targets(["localhost"], [443, 8443], cap=1)


def test_targets_outside_the_allow_list_are_refused() -> None:
    """An address, a range partly outside, and a name resolving outside the allowed networks (CLM-05)."""
    allow = [ipaddress.ip_network("10.0.0.0/25"), ipaddress.ip_network("::1/128")]
    with pytest.raises(TargetError, match=r"'192.168.1.1' is outside the allowed networks"):
        expand_targets(["10.0.0.1", "192.168.1.1"], [443], cap=100, allow=allow)
    with pytest.raises(TargetError, match=r"'10.0.0.0/24' is outside the allowed networks"):
        expand_targets(["10.0.0.0/24"], [443], cap=1000, allow=allow)
    with pytest.raises(TargetError, match=r"'localhost' resolves to 127.0.0.1, outside the allowed networks"):
        expand_targets(["localhost"], [443], cap=100, allow=allow)
    loopback = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
    assert {e.address for e in expand_targets(["localhost"], [443], cap=100, allow=loopback)} >= {"127.0.0.1"}


def test_specs_become_endpoints() -> None:
    """Addresses, ranges, host:port and [IPv6]:port; STARTTLS chosen by port; a name only for names."""
    endpoints = expand_targets(
        ["192.0.2.8/30", "2001:db8::1", "[2001:db8::2]:8443", "192.0.2.1:25"], [443, 389], cap=20
    )
    assert endpoints == [
        Endpoint("192.0.2.9", 443, "192.0.2.9", None, None),
        Endpoint("192.0.2.10", 443, "192.0.2.10", None, None),
        Endpoint("192.0.2.9", 389, "192.0.2.9", None, "ldap"),
        Endpoint("192.0.2.10", 389, "192.0.2.10", None, "ldap"),
        Endpoint("2001:db8::1", 443, "2001:db8::1", None, None),
        Endpoint("2001:db8::1", 389, "2001:db8::1", None, "ldap"),
        Endpoint("2001:db8::2", 8443, "2001:db8::2", None, None),
        Endpoint("192.0.2.1", 25, "192.0.2.1", None, "smtp"),
    ]
    named = expand_targets(["LocalHost.:587", "localhost:143"], [], cap=10)
    assert {(e.host, e.server_name, e.port, e.starttls) for e in named} == {
        ("localhost", "localhost", 587, "smtp"),
        ("localhost", "localhost", 143, "imap"),
    }
    assert "127.0.0.1" in {e.address for e in named}
    assert expand_targets(["192.0.2.1", "192.0.2.1"], [443], cap=2) == [
        Endpoint("192.0.2.1", 443, "192.0.2.1", None, None)
    ]


@pytest.mark.parametrize(
    ("specs", "ports", "message"),
    [
        ([], [443], "no targets given"),
        (["  "], [443], "empty target"),
        (["exa mple.com"], [443], "not a host name, address or CIDR range"),
        (["-bad.example"], [443], "not a host name, address or CIDR range"),
        (["10.0.0.0/33"], [443], "bad network '10.0.0.0/33'"),
        (["192.0.2.1:99999"], [443], "bad port in target '192.0.2.1:99999'"),
        (["192.0.2.1:"], [443], "bad port in target"),
        (["[2001:db8::1"], [443], "expected [IPv6]:port"),
        (["[2001:db8::1]x"], [443], "expected [IPv6]:port"),
        (["192.0.2.1"], [], "has no port and no ports were given"),
    ],
)
def test_bad_specs_are_refused(specs: list[str], ports: list[int], message: str) -> None:
    """Each bad spec gets a one-line message naming it (CLM-05)."""
    with pytest.raises(TargetError) as caught:
        expand_targets(specs, ports, cap=100)
    assert message in str(caught.value) and "\n" not in str(caught.value)
