"""The byte stream a probe speaks TLS over: connected, past any STARTTLS preamble, always closed.

Both ways of talking to an endpoint (a full OpenSSL handshake, a hand-written ClientHello) start
the same way and fail the same way, so the failures are named once here as finding codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator

from server.discovery.starttls import MAX_LINE_BYTES, StartTlsError, start_tls
from server.discovery.targets import Endpoint

READ_CHUNK = 16 * 1024
_TLS_CONTENT_TYPES = range(20, 25)  # change_cipher_spec, alert, handshake, application_data, heartbeat


class ProbeFailure(Exception):
    """A connection that gave no handshake; ``code`` is a finding code, ``detail`` says what happened,
    ``chain`` holds the certificates the peer sent before it failed (DER, leaf first), if any."""

    def __init__(self, code: str, detail: str, chain: tuple[bytes, ...] = ()) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.chain = chain


@contextlib.asynccontextmanager
async def tls_channel(endpoint: Endpoint) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A connection to the endpoint on which the next bytes are TLS; aborted on exit.

    Raises ProbeFailure; time is bounded by the caller (asyncio.timeout around the whole use)."""
    try:
        reader, writer = await asyncio.open_connection(endpoint.address, endpoint.port, limit=MAX_LINE_BYTES)
    except ConnectionRefusedError:
        raise ProbeFailure("refused", "connection refused") from None
    except OSError as exc:
        raise ProbeFailure("unreachable", exc.strerror or str(exc)) from None
    try:
        if endpoint.starttls is not None:
            try:
                await start_tls(endpoint.starttls, reader, writer)
            except StartTlsError as exc:
                raise ProbeFailure("starttls-failed", f"{endpoint.starttls.upper()}: {exc}") from None
        yield reader, writer
    finally:
        writer.transport.abort()


def check_tls_start(first: bytes, chunk: bytes) -> None:
    """Raise not-tls unless ``first`` (the first one or two bytes read) can begin a TLS record:
    a content type, then a major version of 3."""
    if first[0] not in _TLS_CONTENT_TYPES or (len(first) > 1 and first[1] != 3):
        raise ProbeFailure("not-tls", f"the peer sent {chunk[:24]!r}")


def sni_name(server_name: str | None) -> bytes | None:
    """The name to send as SNI: a DNS name in A-labels, never an address literal (RFC 6066 section 3)."""
    if server_name is None:
        return None
    try:
        ipaddress.ip_address(server_name)
    except ValueError:
        pass
    else:
        return None
    try:
        return server_name.rstrip(".").encode("idna")
    except UnicodeError:
        return None
