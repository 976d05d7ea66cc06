"""Does a certificate cover a host name? RFC 6125 section 6.4, as browsers apply it.

Only subjectAltName counts (the common name is ignored, as RFC 6125 advises when SANs are present and
the CA/Browser Forum requires them). A wildcard is the whole left-most label, stands for exactly one
label, and needs at least two labels after it: "*.example.com" covers "www.example.com", never
"example.com", "a.b.example.com" or, as "*.com", a whole top-level domain.
"""

from __future__ import annotations

import ipaddress

from cryptography import x509


def covered_names(leaf: x509.Certificate) -> list[str]:
    """The leaf's DNS names and IP addresses from subjectAltName, as text."""
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    return [str(name) for name in san.get_values_for_type(x509.DNSName)] + [
        str(address) for address in san.get_values_for_type(x509.IPAddress)
    ]


def name_matches(server_name: str, leaf: x509.Certificate) -> bool:
    """Whether a DNS name (or an IP address literal) of the leaf's SAN covers ``server_name``."""
    wanted = _normalised(server_name)
    try:
        address = ipaddress.ip_address(wanted)
    except ValueError:
        return any(_dns_matches(wanted, _normalised(pattern)) for pattern in covered_names(leaf))
    return any(_same_address(address, name) for name in covered_names(leaf))


def _normalised(name: str) -> str:
    try:
        return name.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        return name.rstrip(".").lower()


def _dns_matches(name: str, pattern: str) -> bool:
    if pattern == name:
        return True
    if not pattern.startswith("*.") or pattern.count(".") < 2:
        return False
    first, dot, rest = name.partition(".")
    return bool(first and dot) and rest == pattern[2:]


def _same_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address, name: str) -> bool:
    try:
        return ipaddress.ip_address(name) == address
    except ValueError:
        return False
