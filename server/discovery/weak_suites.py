"""Which weak cipher suite an endpoint accepts, read from its ServerHello to a hand-written ClientHello.

The probe's OpenSSL (cryptography's build) no longer contains RC4, DES, 3DES or export suites, so an
OpenSSL handshake could only ever find NULL and anonymous ones, while 3DES and RC4 are the weak
suites still met in practice. The server's choice is in its ServerHello, before any key exchange:
so the probe sends a TLS 1.2 ClientHello offering only weak suites by number (IANA registry, names
as OpenSSL gives them), reads the ServerHello, and hangs up.
"""

from __future__ import annotations

import asyncio
import os
import struct

from server.discovery.channel import ProbeFailure, check_tls_start, sni_name, tls_channel
from server.discovery.targets import Endpoint

# fmt: off
WEAK_SUITES: dict[int, str] = {
    # NULL encryption
    0x0001: "NULL-MD5", 0x0002: "NULL-SHA", 0x003B: "NULL-SHA256", 0xC001: "ECDH-ECDSA-NULL-SHA",
    0xC006: "ECDHE-ECDSA-NULL-SHA", 0xC00B: "ECDH-RSA-NULL-SHA", 0xC010: "ECDHE-RSA-NULL-SHA",
    0xC015: "AECDH-NULL-SHA",
    # export grade (40- and 56-bit)
    0x0003: "EXP-RC4-MD5", 0x0006: "EXP-RC2-CBC-MD5", 0x0008: "EXP-DES-CBC-SHA",
    0x0011: "EXP-EDH-DSS-DES-CBC-SHA", 0x0014: "EXP-EDH-RSA-DES-CBC-SHA", 0x0017: "EXP-ADH-RC4-MD5",
    0x0019: "EXP-ADH-DES-CBC-SHA",
    # RC4
    0x0004: "RC4-MD5", 0x0005: "RC4-SHA", 0xC002: "ECDH-ECDSA-RC4-SHA", 0xC007: "ECDHE-ECDSA-RC4-SHA",
    0xC00C: "ECDH-RSA-RC4-SHA", 0xC011: "ECDHE-RSA-RC4-SHA", 0x0018: "ADH-RC4-MD5", 0xC016: "AECDH-RC4-SHA",
    # single DES
    0x0009: "DES-CBC-SHA", 0x0012: "EDH-DSS-DES-CBC-SHA", 0x0015: "EDH-RSA-DES-CBC-SHA", 0x001A: "ADH-DES-CBC-SHA",
    # 3DES (64-bit blocks: SWEET32)
    0x000A: "DES-CBC3-SHA", 0x0013: "DHE-DSS-DES-CBC3-SHA", 0x0016: "DHE-RSA-DES-CBC3-SHA",
    0xC003: "ECDH-ECDSA-DES-CBC3-SHA", 0xC008: "ECDHE-ECDSA-DES-CBC3-SHA", 0xC00D: "ECDH-RSA-DES-CBC3-SHA",
    0xC012: "ECDHE-RSA-DES-CBC3-SHA", 0x001B: "ADH-DES-CBC3-SHA", 0xC017: "AECDH-DES-CBC3-SHA",
    # anonymous key exchange (no server authentication)
    0x0034: "ADH-AES128-SHA", 0x003A: "ADH-AES256-SHA", 0x006C: "ADH-AES128-SHA256", 0x006D: "ADH-AES256-SHA256",
    0x00A6: "ADH-AES128-GCM-SHA256", 0x00A7: "ADH-AES256-GCM-SHA384", 0x0046: "ADH-CAMELLIA128-SHA",
    0x0089: "ADH-CAMELLIA256-SHA", 0x00BF: "ADH-CAMELLIA128-SHA256", 0x00C5: "ADH-CAMELLIA256-SHA256",
    0x009B: "ADH-SEED-SHA", 0xC018: "AECDH-AES128-SHA", 0xC019: "AECDH-AES256-SHA",
}
# fmt: on
_VERSION_NAMES = {0x0300: "SSLv3", 0x0301: "TLSv1", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2"}
_GROUPS = (0x001D, 0x0017, 0x0018, 0x0019)  # x25519, secp256r1, secp384r1, secp521r1
# RSA PKCS#1 and ECDSA with SHA-256, RSA-PSS, SHA-384, SHA-512, then the SHA-1 pair old servers need
_SIGNATURE_SCHEMES = (0x0401, 0x0403, 0x0804, 0x0501, 0x0503, 0x0601, 0x0201, 0x0203)
_HANDSHAKE, _ALERT = 22, 21
_SERVER_HELLO = 2
_MAX_RECORD = 16384 + 2048  # RFC 5246 section 6.2.3: TLSCiphertext.length


async def weak_suite(endpoint: Endpoint, *, max_bytes: int) -> tuple[str, str] | None:
    """The version and weak suite the endpoint chose, or None when it refused them all.

    Raises ProbeFailure when the endpoint cannot be reached or does not answer in TLS."""
    async with tls_channel(endpoint) as (reader, writer):
        writer.write(client_hello(sni_name(endpoint.server_name)))
        await writer.drain()
        hello = await _server_hello(reader, max_bytes)
    if hello is None:
        return None
    version, suite = hello
    if suite not in WEAK_SUITES or version not in _VERSION_NAMES:
        return None  # not what was offered: a broken peer, and no evidence of a weak suite
    return _VERSION_NAMES[version], WEAK_SUITES[suite]


def client_hello(server_name: bytes | None) -> bytes:
    """A TLS 1.2 ClientHello record offering exactly the weak suites (RFC 5246 section 7.4.1.2)."""
    suites = b"".join(struct.pack("!H", number) for number in WEAK_SUITES)
    extensions = b"".join(
        [
            _extension(0x0000, _vector(b"\x00" + _vector(server_name, 2), 2)) if server_name else b"",
            _extension(0x000A, _vector(b"".join(struct.pack("!H", group) for group in _GROUPS), 2)),
            _extension(0x000B, b"\x01\x00"),  # EC point formats: uncompressed
            _extension(0x000D, _vector(b"".join(struct.pack("!H", scheme) for scheme in _SIGNATURE_SCHEMES), 2)),
            _extension(0xFF01, b"\x00"),  # renegotiation_info, empty (RFC 5746)
        ]
    )
    body = b"\x03\x03" + os.urandom(32) + b"\x00" + _vector(suites, 2) + b"\x01\x00" + _vector(extensions, 2)
    handshake = bytes([1]) + len(body).to_bytes(3, "big") + body
    return bytes([_HANDSHAKE, 3, 1]) + _vector(handshake, 2)  # record version 1.0, as clients send


def _vector(data: bytes, length_bytes: int) -> bytes:
    return len(data).to_bytes(length_bytes, "big") + data


def _extension(kind: int, data: bytes) -> bytes:
    return struct.pack("!H", kind) + _vector(data, 2)


async def _server_hello(reader: asyncio.StreamReader, max_bytes: int) -> tuple[int, int] | None:
    """(version, cipher suite) from the ServerHello, or None for an alert or a hang-up instead."""
    handshake = b""
    total = 0
    while True:
        try:
            header = await reader.readexactly(5)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                check_tls_start(exc.partial, exc.partial)
            return None
        check_tls_start(header[:2], header)
        kind, length = header[0], int.from_bytes(header[3:5], "big")
        total += 5 + length
        if length > _MAX_RECORD:
            raise ProbeFailure("handshake-failed", f"a record of {length} bytes, longer than TLS allows")
        if total > max_bytes:
            raise ProbeFailure("chain-too-large", f"more than {max_bytes} bytes before the ServerHello ended")
        try:
            payload = await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            return None
        if kind == _ALERT:
            return None
        if kind != _HANDSHAKE:
            raise ProbeFailure("handshake-failed", f"a record of type {kind} before the ServerHello")
        handshake += payload
        if len(handshake) >= 4:
            if handshake[0] != _SERVER_HELLO:
                raise ProbeFailure("handshake-failed", f"handshake message {handshake[0]} instead of a ServerHello")
            size = int.from_bytes(handshake[1:4], "big")
            if len(handshake) >= 4 + size:
                return _parse_server_hello(handshake[4 : 4 + size])


def _parse_server_hello(body: bytes) -> tuple[int, int]:
    """legacy_version, random[32], session_id<0..32>, cipher_suite: the parts before the extensions."""
    if len(body) < 35 or len(body) < 35 + body[34] + 2:
        raise ProbeFailure("handshake-failed", "a truncated ServerHello")
    version = int.from_bytes(body[0:2], "big")
    offset = 35 + body[34]
    return version, int.from_bytes(body[offset : offset + 2], "big")
