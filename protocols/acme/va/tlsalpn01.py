"""tls-alpn-01 (RFC 8737): a TLS handshake with ALPN "acme-tls/1" must show a certificate
for exactly the identifier, carrying the critical acmeIdentifier extension."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import ssl

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from protocols.acme.va.errors import ValidationError
from protocols.acme.va.resolve import Resolver

ALPN = "acme-tls/1"
ACME_IDENTIFIER_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.31")  # RFC 8737 §6.1


def _context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the certificate is self-signed by design
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8737 §4 (ACME-26)
    context.set_alpn_protocols([ALPN])
    return context


def reverse_name(ip: str) -> str:
    """RFC 8738 §6: SNI for an IP identifier is its reverse-mapping name."""
    return ipaddress.ip_address(ip).reverse_pointer


async def fetch_certificate(address: str, port: int, sni: str, timeout: float) -> tuple[bytes, str | None]:
    try:
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection(address, port, ssl=_context(), server_hostname=sni), timeout
        )
    except ssl.SSLError as exc:
        raise ValidationError("tls", f"TLS handshake with {address} port {port} failed: {exc.reason}") from None
    except (TimeoutError, OSError) as exc:
        raise ValidationError("connection", f"cannot connect to {address} port {port}: {exc or 'timed out'}") from None
    try:
        sslobj = writer.get_extra_info("ssl_object")
        der = sslobj.getpeercert(binary_form=True) if sslobj else None
        protocol = sslobj.selected_alpn_protocol() if sslobj else None
    finally:
        writer.close()
    if not der:
        raise ValidationError("tls", f"{address} port {port} presented no certificate")
    return der, protocol


def check_certificate(der: bytes, ident_type: str, value: str, key_authorization: str) -> None:
    try:
        cert = x509.load_der_x509_certificate(der)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        raise ValidationError("unauthorized", "the tls-alpn-01 certificate has no usable subjectAltName") from None
    dns_names = sans.get_values_for_type(x509.DNSName)
    ips = [str(i) for i in sans.get_values_for_type(x509.IPAddress)]
    expected = ([value], []) if ident_type == "dns" else ([], [str(ipaddress.ip_address(value))])
    if (dns_names, ips) != expected or len(list(sans)) != 1:
        raise ValidationError(
            "unauthorized",
            f"the tls-alpn-01 certificate must name exactly {value}, it names "
            f"{', '.join(dns_names + ips) or 'nothing usable'}",
        )
    try:
        ext = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    except x509.ExtensionNotFound:
        raise ValidationError(
            "unauthorized", "the tls-alpn-01 certificate lacks the acmeIdentifier extension"
        ) from None
    if not ext.critical:
        raise ValidationError("unauthorized", "the acmeIdentifier extension must be critical")
    raw = ext.value.value if isinstance(ext.value, x509.UnrecognizedExtension) else b""
    digest = hashlib.sha256(key_authorization.encode()).digest()
    if raw != b"\x04\x20" + digest:  # DER OCTET STRING of the SHA-256 (RFC 8737 §3)
        raise ValidationError("unauthorized", "the acmeIdentifier extension does not match the key authorization")


async def validate_tls_alpn01(
    resolver: Resolver, ident_type: str, value: str, key_authorization: str, *, port: int, timeout: float
) -> None:
    sni = reverse_name(value) if ident_type == "ip" else value
    addresses = await resolver.addresses(value)
    last: ValidationError | None = None
    for address in addresses:
        try:
            der, protocol = await fetch_certificate(address, port, sni, timeout)
        except ValidationError as exc:
            last = exc
            if exc.kind == "connection":
                continue
            raise
        if protocol != ALPN:
            raise ValidationError("tls", f"the server did not negotiate ALPN {ALPN} (got {protocol!r})")
        check_certificate(der, ident_type, value, key_authorization)
        return
    raise last or ValidationError("connection", f"no address for {value}")
