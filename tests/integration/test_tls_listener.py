"""The HTTPS listener: our certificate, TLS 1.2 minimum, client certificates requested but optional."""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.helpers import make_csr
from tests.integration.serverproc import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def server(ca_dir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    proc = ServerProcess(ca_dir / "tetra.toml", f"sqlite:///{ca_dir / 'tetra.db'}", tmp_path / "s.log")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def _context(ca_dir: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca_dir / "ca" / "root.pem"))
    return ctx


def _get(ctx: ssl.SSLContext, port: int, path: str = "/healthz") -> tuple[str, ssl.SSLSocket]:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    tls = ctx.wrap_socket(raw, server_hostname="localhost")
    tls.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := tls.recv(65536):
        data += chunk
    return data.decode(errors="replace"), tls


def test_https_without_client_certificate(server: ServerProcess, ca_dir: Path) -> None:
    reply, tls = _get(_context(ca_dir), server.https_port)
    assert reply.startswith("HTTP/1.1 200")
    peer = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True) or b"")
    sans = peer.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in sans.get_values_for_type(x509.DNSName)


def test_https_with_a_client_certificate(server: ServerProcess, ca_dir: Path, tmp_path: Path) -> None:
    """A client certificate issued by this CA is accepted in the handshake (EST and CMP use it)."""
    import urllib.request

    csr, key = make_csr(["client.example.com"], cn="client.example.com")
    body = json.dumps({"csr": csr.public_bytes(serialization.Encoding.PEM).decode(), "profile": "tls-client"}).encode()
    req = urllib.request.Request(
        f"{server.base}/api/v1/enroll",
        data=body,
        headers={**server.auth, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        issued = json.loads(resp.read())
    (tmp_path / "client.pem").write_text(issued["certificate"] + issued["chain"])
    (tmp_path / "client.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    ctx = _context(ca_dir)
    ctx.load_cert_chain(str(tmp_path / "client.pem"), str(tmp_path / "client.key"))
    reply, _ = _get(ctx, server.https_port)
    assert reply.startswith("HTTP/1.1 200")


def test_server_requests_a_client_certificate(server: ServerProcess, ca_dir: Path) -> None:
    """The handshake carries a CertificateRequest (openssl prints the requested certificate types).
    Python's ssl module cannot send a CA name list, so none is asserted."""
    import subprocess

    result = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{server.https_port}",
            "-tls1_2",
            "-CAfile",
            str(ca_dir / "ca" / "root.pem"),
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert "Client Certificate Types:" in result.stdout


def test_tls_1_1_is_refused(server: ServerProcess, ca_dir: Path) -> None:
    """EST-12: no TLS 1.0/1.1."""
    ctx = _context(ca_dir)
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with pytest.warns(DeprecationWarning):
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
        _get(ctx, server.https_port)
