"""http-01 (RFC 8555 §8.3): fetch the key authorization over plain HTTP, following safe redirects.

A small HTTP/1.1 client on asyncio streams rather than a general library: the
validation authority needs hard bounds (header and body size, redirect count,
total time) and precise errors more than features (ACME-26).
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from ca.digits import parse_decimal, parse_hex
from protocols.acme.va.errors import ValidationError
from protocols.acme.va.resolve import Resolver

MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024  # a key authorization is ~87 bytes; anything near this is not one
USER_AGENT = "Tetra-ACME-VA/1"


@dataclass(frozen=True)
class HttpResult:
    status: int
    headers: dict[str, str]
    body: bytes


def _host_header(host: str, port: int, default: int) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    return host if port == default else f"{host}:{port}"


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        line = await reader.readuntil(b"\r\n")
        size = parse_hex(line.split(b";")[0].strip().decode("latin-1") or "0", 8)
        if size is None:
            raise ValidationError("unauthorized", "the response has a bad chunk size")
        if size == 0:
            return bytes(body)
        if len(body) + size > MAX_BODY_BYTES:
            raise ValidationError("unauthorized", "the response body is too large for a key authorization")
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def http_get(address: str, port: int, host: str, path: str, *, tls: bool, timeout: float) -> HttpResult:
    """One GET; the connection goes to ``address`` while Host/SNI name ``host``."""
    context = None
    if tls:
        # RFC 8555 §8.3 does not ask for a valid certificate when a redirect leads to HTTPS.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        sni = None
        if tls:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                sni = host
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(address, port, ssl=context, server_hostname=sni if tls else None), timeout
        )
    except (TimeoutError, OSError, ssl.SSLError) as exc:
        raise ValidationError("connection", f"cannot connect to {address} port {port}: {_why(exc)}") from None
    try:
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {_host_header(host, port, 443 if tls else 80)}\r\n"
            f"User-Agent: {USER_AGENT}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        )
        writer.write(request.encode("ascii"))
        return await asyncio.wait_for(_read_response(reader), timeout)
    except TimeoutError:
        raise ValidationError("connection", f"timeout reading the response from {address} port {port}") from None
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise ValidationError("connection", f"error reading the response from {address}: {_why(exc)}") from None
    finally:
        writer.close()


async def _read_response(reader: asyncio.StreamReader) -> HttpResult:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise ValidationError("unauthorized", "the response headers are too large") from None
    if len(head) > MAX_HEADER_BYTES:
        raise ValidationError("unauthorized", "the response headers are too large")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = parse_decimal(parts[1], 3) if len(parts) >= 2 else None
    if status is None or not parts[0].startswith("HTTP/1."):
        raise ValidationError("unauthorized", "the server did not answer with HTTP/1.x")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    elif "content-length" in headers:
        length = parse_decimal(headers["content-length"], 10)
        if length is None:
            raise ValidationError("unauthorized", "the response has a bad Content-Length")
        if length > MAX_BODY_BYTES:
            raise ValidationError("unauthorized", "the response body is too large for a key authorization")
        body = await reader.readexactly(length) if status != 304 else b""
    else:
        body = await reader.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            raise ValidationError("unauthorized", "the response body is too large for a key authorization")
    return HttpResult(status, headers, body)


def _why(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    return str(exc) or exc.__class__.__name__


async def validate_http01(
    resolver: Resolver,
    name: str,
    token: str,
    key_authorization: str,
    *,
    http_port: int,
    tls_port: int,
    timeout: float,
    max_redirects: int,
) -> None:
    """Raise ValidationError unless http://name/.well-known/acme-challenge/token serves the key authorization."""
    url = f"http://{_host_header(name, http_port, 80)}/.well-known/acme-challenge/{token}"
    seen: set[str] = set()
    for _ in range(max_redirects + 1):
        parts = urlsplit(url)
        host = parts.hostname or ""
        tls = parts.scheme == "https"
        port = parts.port or (tls_port if tls else http_port)
        addresses = await resolver.addresses(host)
        result: HttpResult | None = None
        error: ValidationError | None = None
        for address in addresses:
            try:
                result = await http_get(
                    address,
                    port,
                    host,
                    parts.path + (f"?{parts.query}" if parts.query else ""),
                    tls=tls,
                    timeout=timeout,
                )
                break
            except ValidationError as exc:
                error = exc
                if exc.kind != "connection":
                    raise
        if result is None:
            raise error or ValidationError("connection", f"no address to connect to for {host}")
        if result.status in (301, 302, 303, 307, 308):
            url = _redirect(url, result.headers.get("location", ""), http_port, tls_port)
            if url in seen:
                raise ValidationError("connection", f"redirect loop at {url}")
            seen.add(url)
            continue
        if result.status != 200:
            raise ValidationError("unauthorized", f"invalid response from {url}: HTTP {result.status}")
        # RFC 8555 §8.3: trailing whitespace in the body is ignored.
        got = result.body.rstrip(b" \t\r\n")
        if got != key_authorization.encode():
            shown = got[:64].decode("utf-8", "replace")
            raise ValidationError("unauthorized", f"the key authorization from {url} is wrong: got {shown!r}")
        return
    raise ValidationError("connection", f"too many redirects (more than {max_redirects})")


def _redirect(current: str, location: str, http_port: int, tls_port: int) -> str:
    """Redirects only to http/https on the validation ports and to a host name (§8.3, ACME-26)."""
    if not location:
        raise ValidationError("connection", f"redirect from {current} without a Location")
    target = urljoin(current, location)
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https"):
        raise ValidationError("connection", f"redirect to unsupported scheme {parts.scheme!r}")
    allowed = {"http": (80, http_port), "https": (443, tls_port)}[parts.scheme]
    if parts.port is not None and parts.port not in allowed:
        raise ValidationError("connection", f"redirect to port {parts.port} is not allowed (80/443 only)")
    if not parts.hostname:
        raise ValidationError("connection", f"redirect to {target!r} has no host")
    return target
