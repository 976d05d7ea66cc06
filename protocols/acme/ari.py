"""ACME Renewal Information (RFC 9773): certificate identifiers and suggested windows.

ARI is the CA's lever to make a fleet renew early: the window normally comes
from the profile's renewal window, and moves to "now" when the certificate is
revoked or an operator asks (`tetra acme renew-now`) for its serial, profile
or issuing CA (rotation).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509

from ca.interface import CoreApi
from ca.records import CertificateRecord
from protocols.acme.b64 import Base64Error, b64d, b64e
from protocols.acme.errors import malformed


@dataclass(frozen=True)
class CertId:
    key_identifier: bytes
    serial: int

    def __str__(self) -> str:
        return f"{b64e(self.key_identifier)}.{b64e(serial_octets(self.serial))}"


def serial_octets(serial: int) -> bytes:
    """The DER INTEGER's content octets (RFC 9773 §4.1): two's complement, minimal, positive."""
    return serial.to_bytes(serial.bit_length() // 8 + 1, "big")


def parse_cert_id(text: str) -> CertId:
    aki_text, dot, serial_text = text.partition(".")
    if not dot or not aki_text or not serial_text:
        raise malformed("renewalInfo certificate identifier must be 'keyIdentifier.serial' in base64url")
    try:
        aki, serial_raw = b64d(aki_text), b64d(serial_text)
    except Base64Error:
        raise malformed("renewalInfo certificate identifier is not base64url") from None
    if (
        not serial_raw
        or serial_raw[0] & 0x80
        or (len(serial_raw) > 1 and serial_raw[0] == 0 and not serial_raw[1] & 0x80)
    ):
        raise malformed("renewalInfo serial is not a minimal positive DER INTEGER")
    return CertId(aki, int.from_bytes(serial_raw, "big"))


def cert_id_of(cert: x509.Certificate) -> CertId:
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    if aki.key_identifier is None:
        raise malformed("certificate has no authority key identifier")
    return CertId(aki.key_identifier, cert.serial_number)


@dataclass(frozen=True)
class Window:
    start: dt.datetime
    end: dt.datetime


async def find_certificate(core: CoreApi, cert_id: CertId) -> CertificateRecord | None:
    """The certificate an ARI identifier names: the issuer by its SKI, then the serial."""
    for name in core.issuer_names:
        try:
            ski = core.chain(name)[0].extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except x509.ExtensionNotFound:
            continue
        if ski == cert_id.key_identifier:
            record = await core.certificate_by_serial(name, cert_id.serial)
            if record is not None:
                return record
    return None


def normal_window(not_before: dt.datetime, not_after: dt.datetime, renewal_window_days: int) -> Window:
    """Renew inside the profile's window before expiry: its first half, so retries have room."""
    lifetime = not_after - not_before
    window = min(dt.timedelta(days=renewal_window_days), lifetime / 2)
    start = not_after - window
    return Window(start, start + window / 2)


def immediate_window(now: dt.datetime) -> Window:
    """A window already under way: RFC 9773 §4.2 clients renew at once."""
    return Window(now - dt.timedelta(hours=1), now - dt.timedelta(seconds=1))
