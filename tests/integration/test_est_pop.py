"""Proof-of-possession linking (RFC 7030 §3.5): under a profile with `pop = "required"`, the CSR's
challengePassword must be the base64 tls-unique of the TLS 1.2 session that carries it. TLS 1.3
has no tls-unique (RFC 9266): such a profile refuses TLS 1.3 clients with a reason that says so,
and other profiles serve them as usual."""

from __future__ import annotations

import base64
import os
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AttributeOID, NameOID

from tests.integration.est_support import PASSWORD, USER, EstServer, est_server

pytestmark = pytest.mark.slow
Challenge = Callable[[bytes | None], bytes | None]


@pytest.fixture
def server(ca_dir: Path, tmp_path: Path) -> Iterator[EstServer]:
    yield from est_server(ca_dir, tmp_path)


def _linked_enroll(server: EstServer, label: str, tls_max: ssl.TLSVersion, challenge: Challenge) -> tuple[int, str]:
    """One simpleenroll whose CSR is made inside the TLS session it is sent over."""
    raw = socket.create_connection(("127.0.0.1", server.https_port), timeout=30)
    with server.tls_context(tls_max).wrap_socket(raw, server_hostname="localhost") as tls:
        unique = tls.get_channel_binding("tls-unique")
        key = ec.generate_private_key(ec.SECP256R1())
        builder = x509.CertificateSigningRequestBuilder().subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pop.example.com")])
        )
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("pop.example.com")]), False)
        password = challenge(unique)
        if password is not None:
            builder = builder.add_attribute(AttributeOID.CHALLENGE_PASSWORD, password)
        body = base64.b64encode(builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER))
        auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        head = (
            f"POST /.well-known/est/{label}/simpleenroll HTTP/1.1\r\nHost: localhost\r\n"
            f"Authorization: Basic {auth}\r\nContent-Type: application/pkcs10\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        tls.sendall(head.encode() + body)
        reply = b""
        while chunk := tls.recv(65536):
            reply += chunk
    status_line, _, rest = reply.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2].decode(errors="replace")


def _linked(unique: bytes | None) -> bytes | None:
    return base64.b64encode(unique) if unique is not None else None


def test_linked_csr_over_tls_1_2(server: EstServer) -> None:
    """EST-08: the right tls-unique is accepted; another session's, or none, is refused (400)."""
    status, text = _linked_enroll(server, "pop", ssl.TLSVersion.TLSv1_2, _linked)
    assert status == 200, text
    before = server.counts()
    status, text = _linked_enroll(server, "pop", ssl.TLSVersion.TLSv1_2, lambda u: base64.b64encode(os.urandom(12)))
    assert status == 400 and "not this TLS session's tls-unique" in text
    status, text = _linked_enroll(server, "pop", ssl.TLSVersion.TLSv1_2, lambda u: None)
    assert status == 400 and "challengePassword" in text
    assert server.counts() == before


def test_tls_1_3_is_refused_where_pop_is_required(server: EstServer) -> None:
    """EST-08: under TLS 1.3 the server offers no tls-unique, so a PoP profile says why it refuses;
    a profile without PoP linking enrolls TLS 1.3 clients normally."""
    before = server.counts()
    status, text = _linked_enroll(server, "pop", ssl.TLSVersion.TLSv1_3, _linked)
    assert status == 400 and "TLS 1.3" in text
    assert server.counts() == before
    status, text = _linked_enroll(server, "iot", ssl.TLSVersion.TLSv1_3, lambda u: None)
    assert status == 200, text
