"""The plaintext preambles that turn an SMTP, IMAP or LDAP connection into a TLS one.

Mail and directory servers on 25, 587, 143 and 389 only present a certificate after a STARTTLS
exchange, so the probe speaks just enough of each protocol to get there. Every read is bounded
(line length, line count, BER length): a peer that talks forever or not at all is cut, by these
bounds or by the caller's deadline.
"""

from __future__ import annotations

import asyncio

MAX_LINE_BYTES = 4096  # RFC 5321 allows 512-octet reply lines; IMAP greetings are short too
MAX_LINES = 100  # continuation lines of one SMTP reply, or untagged IMAP lines before the tag
MAX_BER_BYTES = 16 * 1024  # an LDAP ExtendedResponse is a few dozen bytes

# LDAPMessage { messageID 1, extendedReq [APPLICATION 23] { requestName [0] "1.3.6.1.4.1.1466.20037" } }
# (RFC 4511 section 4.14.1), encoded by hand: it never changes.
_LDAP_OID = b"1.3.6.1.4.1.1466.20037"
_LDAP_STARTTLS_REQUEST = (
    bytes([0x30, 5 + 2 + len(_LDAP_OID), 0x02, 0x01, 0x01, 0x77, 2 + len(_LDAP_OID), 0x80, len(_LDAP_OID)]) + _LDAP_OID
)
_LDAP_EXTENDED_RESPONSE = 0x78  # [APPLICATION 24], constructed


class StartTlsError(Exception):
    """The peer did not agree to start TLS; the message says what it sent instead."""


async def start_tls(kind: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Run the ``kind`` ("smtp", "imap" or "ldap") preamble; on return the next bytes are TLS."""
    if kind == "smtp":
        await _smtp(reader, writer)
    elif kind == "imap":
        await _imap(reader, writer)
    elif kind == "ldap":
        await _ldap(reader, writer)
    else:
        raise ValueError(f"unknown STARTTLS protocol {kind!r}")


async def _line(reader: asyncio.StreamReader) -> str:
    try:
        raw = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        raise StartTlsError(f"connection closed after {exc.partial[:60]!r}") from None
    except asyncio.LimitOverrunError:
        raise StartTlsError(f"a line longer than {MAX_LINE_BYTES} bytes") from None
    return raw.decode("latin-1").rstrip("\r\n")


async def _smtp_reply(reader: asyncio.StreamReader) -> tuple[str, str]:
    """The code and last line of one (possibly multi-line) SMTP reply."""
    for _ in range(MAX_LINES):
        line = await _line(reader)
        if len(line) < 3 or not line[:3].isdigit() or line[3:4] not in ("", " ", "-"):
            raise StartTlsError(f"not an SMTP reply: {line[:60]!r}")
        if line[3:4] != "-":
            return line[:3], line
    raise StartTlsError(f"an SMTP reply of more than {MAX_LINES} lines")


async def _smtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    code, line = await _smtp_reply(reader)
    if code != "220":
        raise StartTlsError(f"SMTP greeting {line[:60]!r}")
    writer.write(b"EHLO " + _address_literal(writer).encode() + b"\r\n")
    code, line = await _smtp_reply(reader)
    if code != "250":
        raise StartTlsError(f"SMTP EHLO answered {line[:60]!r}")
    writer.write(b"STARTTLS\r\n")
    code, line = await _smtp_reply(reader)
    if code != "220":
        raise StartTlsError(f"SMTP STARTTLS answered {line[:60]!r}")


def _address_literal(writer: asyncio.StreamWriter) -> str:
    """Our own address as RFC 5321 wants it in EHLO when we have no name."""
    host = str(writer.get_extra_info("sockname")[0])
    return f"[IPv6:{host}]" if ":" in host else f"[{host}]"


async def _imap(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    greeting = await _line(reader)
    if not greeting.upper().startswith("* OK"):
        raise StartTlsError(f"IMAP greeting {greeting[:60]!r}")
    writer.write(b"a1 STARTTLS\r\n")
    for _ in range(MAX_LINES):
        line = await _line(reader)
        if line.startswith("* "):
            continue
        if line.upper().startswith("A1 OK"):
            return
        raise StartTlsError(f"IMAP STARTTLS answered {line[:60]!r}")
    raise StartTlsError(f"more than {MAX_LINES} untagged IMAP lines")


async def _ldap(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(_LDAP_STARTTLS_REQUEST)
    message = await _ber_element(reader, 0x30)
    _, rest = _ber_split(message, 0x02)  # messageID
    response, _ = _ber_split(rest, _LDAP_EXTENDED_RESPONSE)
    result_code, _ = _ber_split(response, 0x0A)  # resultCode ENUMERATED
    if result_code != b"\x00":
        raise StartTlsError(f"LDAP StartTLS answered resultCode {int.from_bytes(result_code, 'big')}")


async def _ber_element(reader: asyncio.StreamReader, tag: int) -> bytes:
    """The contents of one BER element read off the stream (definite lengths only, as LDAP requires)."""
    try:
        head = await reader.readexactly(2)
        if head[0] != tag:
            raise StartTlsError(f"not an LDAP message: {head!r}")
        length = head[1]
        if length & 0x80:
            count = length & 0x7F
            if not 1 <= count <= 3:
                raise StartTlsError("an LDAP message with an unsupported length")
            length = int.from_bytes(await reader.readexactly(count), "big")
        if length > MAX_BER_BYTES:
            raise StartTlsError(f"an LDAP message of {length} bytes")
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise StartTlsError(f"connection closed after {exc.partial[:60]!r}") from None


def _ber_split(data: bytes, tag: int) -> tuple[bytes, bytes]:
    """The contents of the first element of ``data`` (which must carry ``tag``) and what follows."""
    if len(data) < 2 or data[0] != tag:
        raise StartTlsError(f"unexpected LDAP element {data[:8]!r}")
    length, offset = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, offset = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
    if offset + length > len(data):
        raise StartTlsError("a truncated LDAP element")
    return data[offset : offset + length], data[offset + length :]
