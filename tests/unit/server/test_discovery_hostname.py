"""RFC 6125 name matching for discovery's hostname-mismatch finding."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server.discovery.hostname import covered_names, name_matches


def leaf(*names: str, common_name: str = "cn.example.com") -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if names:
        general: list[x509.GeneralName] = []
        for name in names:
            try:
                general.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                general.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
    return builder.sign(key, hashes.SHA256())


@pytest.mark.parametrize(
    ("server_name", "pattern", "matches"),
    [
        ("www.example.com", "www.example.com", True),
        ("WWW.Example.COM.", "www.example.com", True),
        ("www.example.com", "*.example.com", True),
        ("example.com", "*.example.com", False),
        ("a.b.example.com", "*.example.com", False),
        ("www.example.com", "w*.example.com", False),
        ("example.com", "*.com", False),
        ("www.example.com", "*.www.example.com", False),
        ("mail.example.com", "www.example.com", False),
        ("bücher.example", "xn--bcher-kva.example", True),
        ("192.0.2.1", "192.0.2.1", True),
        ("192.0.2.1", "*.2.1", False),
        ("2001:db8::1", "2001:db8:0::1", True),
    ],
)
def test_rfc6125_matching(server_name: str, pattern: str, matches: bool) -> None:
    assert name_matches(server_name, leaf(pattern)) is matches


def test_the_common_name_is_ignored() -> None:
    """Without a subjectAltName nothing matches, not even the CN."""
    cert = leaf(common_name="www.example.com")
    assert covered_names(cert) == []
    assert not name_matches("www.example.com", cert)
