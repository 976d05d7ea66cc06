"""ACME-26: the validation authority against hostile loopback servers. Every case ends in a
precise ValidationError (the authorization becomes invalid with that detail), never a hang, an
unbounded read or a pass."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from interop.acme_helpers import LoopbackDns
from protocols.acme.va.errors import ValidationError
from protocols.acme.va.http01 import MAX_BODY_BYTES, validate_http01
from protocols.acme.va.resolve import Resolver
from protocols.acme.va.tlsalpn01 import ACME_IDENTIFIER_OID, validate_tls_alpn01

TOKEN = "tok"
KEY_AUTH = "tok.thumbprint"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
def dns() -> Iterator[LoopbackDns]:
    server = LoopbackDns().start()
    yield server
    server.stop()


async def serve(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def answer(status: str, headers: dict[str, str], body: bytes = b"") -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(f"HTTP/1.1 {status}\r\n{head}\r\n".encode() + body)
        await writer.drain()
        writer.close()

    return handle


async def http01(dns: LoopbackDns, handler: Handler, *, timeout: float = 2.0, name: str = "va.example.com") -> None:
    server, port = await serve(handler)
    try:
        await validate_http01(
            Resolver(("127.0.0.1", dns.port), 2.0),
            name,
            TOKEN,
            KEY_AUTH,
            http_port=port,
            tls_port=port,
            timeout=timeout,
            max_redirects=5,
        )
    finally:
        server.close()


async def test_http01_good_answer_passes(dns: LoopbackDns) -> None:
    """The baseline the hostile cases below differ from."""
    await http01(dns, answer("200 OK", {"Content-Length": str(len(KEY_AUTH) + 1)}, KEY_AUTH.encode() + b"\n"))


@pytest.mark.parametrize(
    ("location", "fragment"),
    [
        ("/.well-known/acme-challenge/tok", "redirect loop"),
        ("ftp://va.example.com/x", "unsupported scheme"),
        ("http://va.example.com:8081/x", "not allowed"),
        ("", "without a Location"),
    ],
)
async def test_http01_bad_redirects(dns: LoopbackDns, location: str, fragment: str) -> None:
    headers = {"Location": location, "Content-Length": "0"} if location else {"Content-Length": "0"}
    with pytest.raises(ValidationError, match=fragment):
        await http01(dns, answer("302 Found", headers))


async def test_http01_too_many_redirects(dns: LoopbackDns) -> None:
    hops = iter(range(100))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(f"HTTP/1.1 302 Found\r\nLocation: /hop{next(hops)}\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    with pytest.raises(ValidationError, match="too many redirects"):
        await http01(dns, handle)


@pytest.mark.parametrize(
    ("headers", "body", "fragment"),
    [
        ({"Content-Length": str(10 * MAX_BODY_BYTES)}, b"x" * 100, "too large"),
        ({"Transfer-Encoding": "chunked"}, f"{MAX_BODY_BYTES + 10:x}\r\n".encode() + b"x" * 100, "too large"),
        ({}, b"x" * (MAX_BODY_BYTES + 10), "too large"),
        ({"X-Big": "y" * 70_000}, b"", "too large"),
        ({"Content-Length": "zz"}, b"", "bad Content-Length"),
        ({"Content-Length": "3"}, b"bad", "key authorization from"),
    ],
)
async def test_http01_huge_or_wrong_responses(
    dns: LoopbackDns, headers: dict[str, str], body: bytes, fragment: str
) -> None:
    with pytest.raises(ValidationError, match=fragment):
        await http01(dns, answer("200 OK", headers, body))


async def test_http01_slow_response_times_out(dns: LoopbackDns) -> None:
    """A server that accepts and then says nothing costs one timeout, not a hung validation."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)
        writer.close()

    started = asyncio.get_running_loop().time()
    with pytest.raises(ValidationError, match="timeout"):
        await http01(dns, silent, timeout=0.5)
    assert asyncio.get_running_loop().time() - started < 3


async def test_http01_not_http_and_error_status(dns: LoopbackDns) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()
        writer.close()

    with pytest.raises(ValidationError, match=r"HTTP/1\.x"):
        await http01(dns, garbage)
    with pytest.raises(ValidationError, match="HTTP 404"):
        await http01(dns, answer("404 Not Found", {"Content-Length": "0"}))


async def test_http01_name_without_address(dns: LoopbackDns) -> None:
    dns.servfail.add("broken.example.com")
    with pytest.raises(ValidationError, match="DNS problem"):
        await http01(dns, answer("200 OK", {"Content-Length": "0"}), name="broken.example.com")


def _alpn_certificate(name: str, digest_der: bytes | None, tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
    )
    if digest_der is not None:
        builder = builder.add_extension(x509.UnrecognizedExtension(ACME_IDENTIFIER_OID, digest_der), critical=True)
    cert = builder.sign(key, hashes.SHA256())
    cert_path, key_path = tmp / "alpn.pem", tmp / "alpn.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def tls_alpn(dns: LoopbackDns, context: ssl.SSLContext) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.5)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    try:
        await validate_tls_alpn01(
            Resolver(("127.0.0.1", dns.port), 2.0),
            "dns",
            "alpn.example.com",
            KEY_AUTH,
            port=server.sockets[0].getsockname()[1],
            timeout=2.0,
        )
    finally:
        server.close()


def _server_context(
    cert: Path, key: Path, *, alpn: list[str], max_version: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(alpn)
    if max_version is not None:
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = max_version
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


async def test_tls_alpn01_wrong_oid_value_and_missing_alpn(dns: LoopbackDns, tmp_path: Path) -> None:
    """A certificate whose acmeIdentifier is not the key authorization's digest, and a server
    that does not negotiate acme-tls/1: both invalid with their own detail."""
    import hashlib

    wrong = b"\x04\x20" + hashlib.sha256(b"someone else").digest()
    cert, key = _alpn_certificate("alpn.example.com", wrong, tmp_path)
    with pytest.raises(ValidationError, match="does not match"):
        await tls_alpn(dns, _server_context(cert, key, alpn=["acme-tls/1"]))
    good = b"\x04\x20" + hashlib.sha256(KEY_AUTH.encode()).digest()
    cert, key = _alpn_certificate("alpn.example.com", good, tmp_path)
    await tls_alpn(dns, _server_context(cert, key, alpn=["acme-tls/1"]))  # the same, correct: passes
    with pytest.raises(ValidationError, match="ALPN"):
        await tls_alpn(dns, _server_context(cert, key, alpn=["http/1.1"]))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_tls_alpn01_refuses_tls_below_1_2(dns: LoopbackDns, tmp_path: Path) -> None:
    """RFC 8737 §4: TLS 1.2 or later. A server capped at TLS 1.1 fails the handshake."""
    import hashlib

    good = b"\x04\x20" + hashlib.sha256(KEY_AUTH.encode()).digest()
    cert, key = _alpn_certificate("alpn.example.com", good, tmp_path)
    await tls_alpn(dns, _server_context(cert, key, alpn=["acme-tls/1"], max_version=ssl.TLSVersion.TLSv1_2))
    context = _server_context(cert, key, alpn=["acme-tls/1"], max_version=ssl.TLSVersion.TLSv1_1)
    with pytest.raises(ValidationError, match=r"cannot connect|handshake|TLS"):
        await tls_alpn(dns, context)
