"""One TLS handshake with an endpoint, driven through memory BIOs over asyncio streams.

pyOpenSSL does the TLS; the event loop does the I/O, so a thousand handshakes need no thread each.
OpenSSL does not verify anything here (the chain is checked afterwards, problem by problem), and the
bytes read are counted and capped so that a peer cannot make the probe read without end.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass

from OpenSSL import SSL, crypto

from server.discovery.channel import READ_CHUNK, ProbeFailure, check_tls_start, sni_name, tls_channel
from server.discovery.targets import Endpoint

# Protocol versions, oldest first, as OpenSSL names them (and as reports list them).
VERSIONS: tuple[tuple[int, str], ...] = (
    (SSL.SSL3_VERSION, "SSLv3"),
    (SSL.TLS1_VERSION, "TLSv1"),
    (SSL.TLS1_1_VERSION, "TLSv1.1"),
    (SSL.TLS1_2_VERSION, "TLSv1.2"),
    (SSL.TLS1_3_VERSION, "TLSv1.3"),
)
VERSION_BY_NAME = {name: number for number, name in VERSIONS}

# Authenticated suites of every strength, so that an old server still shows its certificate.
AUTHENTICATED_CIPHERS = b"ALL:!aNULL:!eNULL:@SECLEVEL=0"


@dataclass(frozen=True)
class Handshake:
    version: str
    cipher: str
    chain: tuple[bytes, ...]  # DER, leaf first, as presented


@functools.cache
def lowest_version() -> int:
    """The oldest version this OpenSSL can offer (SSLv3 only where it was compiled in)."""
    for number, _ in VERSIONS:
        try:
            SSL.Context(SSL.TLS_METHOD).set_min_proto_version(number)
        except SSL.Error:
            continue
        return number
    raise RuntimeError("OpenSSL offers no TLS version")  # pragma: no cover


@functools.cache
def client_context(max_version: int, ciphers: bytes) -> SSL.Context:
    """A non-verifying client context offering every version from the lowest up to ``max_version``."""
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_min_proto_version(lowest_version())
    context.set_max_proto_version(max_version)
    context.set_cipher_list(ciphers)
    context.set_options(SSL.OP_LEGACY_SERVER_CONNECT | SSL.OP_NO_TICKET | SSL.OP_NO_COMPRESSION)
    context.set_verify(SSL.VERIFY_NONE)
    return context


async def handshake(endpoint: Endpoint, context: SSL.Context, *, max_bytes: int) -> Handshake:
    """Connect, run the STARTTLS preamble if the endpoint has one, and complete a handshake,
    reading at most ``max_bytes``. Raises ProbeFailure."""
    async with tls_channel(endpoint) as (reader, writer):
        connection = SSL.Connection(context, None)
        connection.set_connect_state()
        server_name = sni_name(endpoint.server_name)
        if server_name is not None:
            connection.set_tlsext_host_name(server_name)
        await _drive(connection, reader, writer, max_bytes)
        return _result(connection)


async def _drive(
    connection: SSL.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_bytes: int
) -> None:
    received = b""  # the first bytes only, to tell TLS from anything else
    total = 0
    while True:
        try:
            connection.do_handshake()
            done = True
        except SSL.WantReadError:
            done = False
        except SSL.Error as exc:
            _send_pending(connection, writer)  # our alert, if OpenSSL wrote one
            raise _failure(exc, _presented(connection)) from None
        _send_pending(connection, writer)
        if done:
            return
        await writer.drain()
        chunk = await reader.read(READ_CHUNK)
        if not chunk:
            detail = "the peer closed the connection during the handshake"
            raise ProbeFailure("handshake-failed", detail, _presented(connection))
        if len(received) < 2:
            received += chunk[: 2 - len(received)]
            check_tls_start(received, chunk)
        total += len(chunk)
        if total > max_bytes:
            raise ProbeFailure("chain-too-large", f"more than {max_bytes} bytes of handshake")
        connection.bio_write(chunk)


def _send_pending(connection: SSL.Connection, writer: asyncio.StreamWriter) -> None:
    while True:
        try:
            data = connection.bio_read(READ_CHUNK)
        except SSL.WantReadError:
            return
        if not data:
            return
        writer.write(data)


def _failure(exc: SSL.Error, chain: tuple[bytes, ...]) -> ProbeFailure:
    queue = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
    reasons = [str(item[2]) for item in queue if isinstance(item, tuple) and len(item) == 3]
    reason = "; ".join(reasons) or f"{type(exc).__name__}: {exc}"
    if "excessive message size" in reason:
        return ProbeFailure("chain-too-large", f"OpenSSL refused a handshake message: {reason}")
    return ProbeFailure("handshake-failed", reason, chain)


def _result(connection: SSL.Connection) -> Handshake:
    return Handshake(
        version=connection.get_protocol_version_name(),
        cipher=connection.get_cipher_name() or "",
        chain=_presented(connection),
    )


def _presented(connection: SSL.Connection) -> tuple[bytes, ...]:
    """The peer's certificates so far, as DER: OpenSSL's own objects dumped, so that a certificate
    cryptography cannot parse is still reported."""
    chain = connection.get_peer_cert_chain() or []
    return tuple(crypto.dump_certificate(crypto.FILETYPE_ASN1, cert) for cert in chain)
