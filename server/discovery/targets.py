"""Targets to probe: host names, addresses, CIDR ranges and ports, checked and counted before use.

A scan is refused (CLM-05) before a single packet leaves when its size is over the caller's cap or
an address lies outside the allowed networks: ranges are counted arithmetically, never listed, so a
mistyped /8 costs nothing. Names are resolved only once every literal spec has passed (blocking
getaddrinfo: call from a thread inside a running loop), and every address a name resolves to must
be allowed too.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# The plaintext protocol spoken before TLS on the well-known STARTTLS ports.
STARTTLS_BY_PORT = {25: "smtp", 587: "smtp", 143: "imap", 389: "ldap"}

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class TargetError(ValueError):
    """A target or port specification that cannot be scanned; the message names it, on one line."""


@dataclass(frozen=True)
class Endpoint:
    """One address and port to probe. ``server_name`` is sent as SNI and checked against the leaf."""

    host: str
    port: int
    address: str
    server_name: str | None
    starttls: str | None


def parse_ports(text: str) -> list[int]:
    """Ports from "443,8443,1000-1010", in the order given, each once."""
    ports: dict[int, None] = {}
    for item in text.split(","):
        item = item.strip()
        low, dash, high = item.partition("-")
        if not low.strip().isdigit() or (dash and not high.strip().isdigit()):
            raise TargetError(f"bad port {item!r} in {text!r}: expected a number or a range such as 1000-1010")
        first, last = int(low), int(high) if dash else int(low)
        if not 1 <= first <= last <= 65535:
            raise TargetError(f"bad port {item!r} in {text!r}: ports run from 1 to 65535, low to high")
        ports.update(dict.fromkeys(range(first, last + 1)))
    return list(ports)


@dataclass(frozen=True)
class _Spec:
    text: str
    network: IPNetwork | None  # an address is a network of one
    name: str | None
    port: int | None


def expand_targets(
    specs: Sequence[str],
    ports: Sequence[int],
    *,
    cap: int,
    allow: Sequence[IPNetwork] | None = None,
) -> list[Endpoint]:
    """Every endpoint the specs name (a spec's own port, else each of ``ports``), at most ``cap``."""
    if not specs:
        raise TargetError("no targets given")
    parsed = [_parse_spec(text) for text in specs]
    for spec in parsed:
        if spec.port is None and not ports:
            raise TargetError(f"target {spec.text!r} has no port and no ports were given")
    ranges_total = sum(_host_count(s.network) * _port_count(s, ports) for s in parsed if s.network is not None)
    _check_cap(ranges_total, cap)
    for spec in parsed:
        if spec.network is not None and allow is not None and not _network_allowed(spec.network, allow):
            raise TargetError(f"target {spec.text!r} is outside the allowed networks")
    resolved = {s.name: _resolve(s, allow) for s in parsed if s.name is not None}
    names_total = sum(len(resolved[s.name]) * _port_count(s, ports) for s in parsed if s.name is not None)
    _check_cap(ranges_total + names_total, cap)
    endpoints: dict[Endpoint, None] = {}
    for spec in parsed:
        for port in (spec.port,) if spec.port is not None else ports:
            for host, address in _addresses(spec, resolved):
                endpoints[Endpoint(host, port, address, spec.name, STARTTLS_BY_PORT.get(port))] = None
    return list(endpoints)


def _check_cap(total: int, cap: int) -> None:
    if total > cap:
        raise TargetError(f"the targets make {total} endpoints, more than the cap of {cap}")


def _port_count(spec: _Spec, ports: Sequence[int]) -> int:
    return 1 if spec.port is not None else len(ports)


def _host_count(network: IPNetwork) -> int:
    """How many addresses ``network.hosts()`` yields, without listing them."""
    if network.version == 4:
        return network.num_addresses - 2 if network.prefixlen < 31 else network.num_addresses
    return network.num_addresses - 1 if network.prefixlen < 127 else network.num_addresses


def _addresses(spec: _Spec, resolved: dict[str, list[IPAddress]]) -> Iterator[tuple[str, str]]:
    if spec.name is not None:
        for address in resolved[spec.name]:
            yield spec.name, str(address)
    elif spec.network is not None:
        hosts = spec.network.hosts() if spec.network.num_addresses > 1 else iter([spec.network.network_address])
        for address in hosts:
            yield str(address), str(address)


def _parse_spec(text: str) -> _Spec:
    spec = text.strip()
    if not spec:
        raise TargetError("empty target")
    host, port = _split_port(spec)
    if "/" in host:
        try:
            return _Spec(spec, ipaddress.ip_network(host, strict=False), None, port)
        except ValueError:
            raise TargetError(f"bad network {text!r}: expected a CIDR range such as 10.0.0.0/24") from None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return _Spec(spec, None, _host_name(host, text), port)
    return _Spec(spec, ipaddress.ip_network(address), None, port)


def _split_port(spec: str) -> tuple[str, int | None]:
    """ "[v6]:port" and "host:port" carry a port; a bare IPv6 address (two colons or more) does not."""
    if spec.startswith("["):
        inside, bracket, rest = spec[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise TargetError(f"bad target {spec!r}: expected [IPv6]:port")
        return inside, _one_port(rest[1:], spec) if rest else None
    if spec.count(":") == 1:
        host, _, port = spec.partition(":")
        return host, _one_port(port, spec)
    return spec, None


def _one_port(text: str, spec: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise TargetError(f"bad port in target {spec!r}: ports run from 1 to 65535")
    return int(text)


def _host_name(host: str, text: str) -> str:
    try:
        ascii_name = host.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise TargetError(f"bad host name {text!r}") from None
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise TargetError(f"bad target {text!r}: not a host name, address or CIDR range")
    return ascii_name


def _resolve(spec: _Spec, allow: Sequence[IPNetwork] | None) -> list[IPAddress]:
    assert spec.name is not None
    try:
        infos = socket.getaddrinfo(spec.name, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetError(f"cannot resolve {spec.text!r}: {exc}") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos))
    for address in addresses:
        if allow is not None and not _network_allowed(ipaddress.ip_network(address), allow):
            raise TargetError(f"target {spec.text!r} resolves to {address}, outside the allowed networks")
    return addresses


def _network_allowed(network: IPNetwork, allow: Sequence[IPNetwork]) -> bool:
    return any(
        network.version == allowed.version and network.subnet_of(allowed)  # type: ignore[arg-type]
        for allowed in allow
    )
