"""Loopback peers for the discovery tests: TLS servers with chosen chains, versions and suites,
STARTTLS talkers (SMTP, IMAP, LDAP), and hostile peers (garbage, silence, a trickle, endless lines).

Each server is a real asyncio server on 127.0.0.1 with Python's ssl module (the system OpenSSL), so
the probe (pyOpenSSL, cryptography's OpenSSL) meets a TLS stack that is not its own. The LDAP talker
decodes and encodes with asn1crypto, not with the probe's hand-written BER.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.discovery_pki import PrivateKey

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
_files = itertools.count()


def server_context(
    directory: Path,
    chain: Sequence[x509.Certificate],
    key: PrivateKey,
    *,
    versions: tuple[ssl.TLSVersion, ssl.TLSVersion] = (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3),
    ciphers: str = "DEFAULT:@SECLEVEL=0",
) -> ssl.SSLContext:
    """A server context presenting ``chain`` (leaf first). Security level 0 before loading, so that a
    weak key or a SHA-1 signature is served instead of refused by the server's own OpenSSL."""
    number = next(_files)
    cert_file, key_file = directory / f"chain{number}.pem", directory / f"key{number}.pem"
    cert_file.write_bytes(b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in chain))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers(ciphers)
    context.minimum_version, context.maximum_version = versions
    context.load_cert_chain(cert_file, key_file)
    return context


@contextlib.asynccontextmanager
async def serve(handler: Handler, *, tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """Run ``handler`` for each connection on a loopback port (yielded); every connection is cut on exit."""
    connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections[task] = writer
        try:
            await handler(reader, writer)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass  # the server is shutting down: asyncio 3.11 would log a cancelled handler as an error
        finally:
            writer.transport.abort()

    extra: dict[str, Any] = {"ssl": tls, "ssl_handshake_timeout": 10} if tls is not None else {}
    server = await asyncio.start_server(guarded, "127.0.0.1", 0, **extra)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in connections.values():
            writer.transport.abort()
        if connections:  # aborted, the handlers end on their next read or write
            _, stragglers = await asyncio.wait(connections, timeout=1)
            for task in stragglers:
                task.cancel()
            await asyncio.gather(*stragglers, return_exceptions=True)
        await server.wait_closed()


async def until_closed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """After the handshake: wait for the client to hang up."""
    while await reader.read(4096):
        pass


def refused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- STARTTLS talkers ------------------------------------------------------------------------------


def smtp_talker(context: ssl.SSLContext, *, starttls_reply: bytes = b"220 2.0.0 Ready to start TLS") -> Handler:
    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220-mail.example.test ESMTP\r\n220 test talker\r\n")
        ehlo = await reader.readline()
        if not ehlo.upper().startswith(b"EHLO ["):
            writer.write(b"501 5.5.4 EHLO with an address literal expected\r\n")
            return
        writer.write(b"250-mail.example.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
        if await reader.readline() != b"STARTTLS\r\n":
            writer.write(b"500 5.5.1 STARTTLS expected\r\n")
            return
        writer.write(starttls_reply + b"\r\n")
        if starttls_reply.startswith(b"220"):
            await writer.start_tls(context)
            await until_closed(reader, writer)

    return talk


def imap_talker(context: ssl.SSLContext) -> Handler:
    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] test talker ready\r\n")
        tag, _, command = (await reader.readline()).rstrip(b"\r\n").partition(b" ")
        if command.upper() != b"STARTTLS":
            writer.write(tag + b" BAD STARTTLS expected\r\n")
            return
        writer.write(b"* NOTE an untagged line first\r\n" + tag + b" OK Begin TLS negotiation now\r\n")
        await writer.start_tls(context)
        await until_closed(reader, writer)

    return talk


class _ResultCode(core.Enumerated):  # type: ignore[misc]
    _map: ClassVar = {0: "success", 2: "protocolError"}


class _ExtendedRequest(core.Sequence):  # type: ignore[misc]
    class_ = 1  # application
    tag = 23
    _fields: ClassVar = [
        ("requestName", core.OctetString, {"implicit": 0}),
        ("requestValue", core.OctetString, {"implicit": 1, "optional": True}),
    ]


class _ExtendedResponse(core.Sequence):  # type: ignore[misc]
    class_ = 1
    tag = 24
    _fields: ClassVar = [
        ("resultCode", _ResultCode),
        ("matchedDN", core.OctetString),
        ("diagnosticMessage", core.OctetString),
    ]


class _RequestMessage(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar = [("messageID", core.Integer), ("extendedReq", _ExtendedRequest)]


class _ResponseMessage(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar = [("messageID", core.Integer), ("extendedResp", _ExtendedResponse)]


def ldap_talker(context: ssl.SSLContext) -> Handler:
    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readexactly(2)
        request = _RequestMessage.load(head + await reader.readexactly(head[1]))
        is_starttls = request["extendedReq"]["requestName"].native == b"1.3.6.1.4.1.1466.20037"
        reply = {
            "resultCode": "success" if is_starttls else "protocolError",
            "matchedDN": b"",
            "diagnosticMessage": b"",
        }
        writer.write(_ResponseMessage({"messageID": request["messageID"].native, "extendedResp": reply}).dump())
        if is_starttls:
            await writer.start_tls(context)
            await until_closed(reader, writer)

    return talk


# --- hostile peers ---------------------------------------------------------------------------------


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An HTTP server where TLS was expected."""
    await reader.read(4096)
    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    await until_closed(reader, writer)


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accepts, reads, never answers."""
    await until_closed(reader, writer)


def trickle(interval: float = 1.0) -> Handler:
    """A TLS record header, then one byte of its 16 KiB body every ``interval`` seconds."""

    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for byte in itertools.chain(b"\x16\x03\x03\x40\x00", itertools.repeat(0)):
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(interval)

    return drip


async def endless_smtp_greeting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An SMTP greeting that continues forever ("220-" lines)."""
    while True:
        writer.write(b"220-still greeting you\r\n" * 64)
        await writer.drain()
        await asyncio.sleep(0.01)


def tls_once_then_silent(context: ssl.SSLContext) -> Handler:
    """Completes the first handshake, then accepts and ignores every later connection."""
    connections = itertools.count()

    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if next(connections) == 0:
            await writer.start_tls(context)
        await until_closed(reader, writer)

    return talk


@dataclass
class CountingTls:
    """A TLS server handler that counts connections, whether or not their handshake succeeds."""

    context: ssl.SSLContext
    connections: int = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await writer.start_tls(self.context)
        await until_closed(reader, writer)


def legacy_suite_server(suite: int) -> Handler:
    """A peer that answers a ClientHello offering ``suite`` with a ServerHello choosing it (TLS 1.2) and
    any other with a handshake_failure alert: a 3DES or RC4 server, which no OpenSSL here can be."""

    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        header = await reader.readexactly(5)
        record = await reader.readexactly(int.from_bytes(header[3:5], "big"))
        body = record[4:]  # after the handshake type and length
        session_end = 35 + body[34]
        suites_length = int.from_bytes(body[session_end : session_end + 2], "big")
        suites = body[session_end + 2 : session_end + 2 + suites_length]
        offered = {int.from_bytes(suites[i : i + 2], "big") for i in range(0, len(suites), 2)}
        if header[0] != 22 or record[0] != 1 or suite not in offered:
            writer.write(b"\x15\x03\x03\x00\x02\x02\x28")  # fatal handshake_failure
            return
        hello = b"\x03\x03" + bytes(32) + b"\x00" + suite.to_bytes(2, "big") + b"\x00"
        message = b"\x02" + len(hello).to_bytes(3, "big") + hello
        writer.write(b"\x16\x03\x03" + len(message).to_bytes(2, "big") + message)
        await until_closed(reader, writer)

    return talk


@dataclass
class SilentGauge:
    """A silent peer that records the most connections it had open at once."""

    open: int = 0
    most: int = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.most = max(self.most, self.open)
        try:
            await until_closed(reader, writer)
        finally:
            self.open -= 1
