"""What the inventory records about a certificate, read from the certificate itself.

Certificates found in the wild are not all well made: an unknown SAN type, a DSA key, a broken
extension or a negative serial must still give a record (a weak, odd certificate is exactly what
an inventory is for), so every field here falls back to something readable instead of raising.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding

NAME_MAX = 255  # longest name indexed for search (the names table's column)


@dataclass(frozen=True)
class CertificateFacts:
    fingerprint: str  # SHA-256 of the DER, lowercase hex
    subject: str  # RFC 4514
    issuer_dn: str
    serial: str  # lowercase hex
    sans: tuple[str, ...]  # "type:value", as the CA's own ledger writes them
    not_before: dt.datetime
    not_after: dt.datetime
    key_algorithm: str  # rsa | ec | ed25519 | ed448 | dsa | unknown
    key_size: int
    signature_algorithm: str  # e.g. sha256WithRSAEncryption, or the OID's dotted form
    is_ca: bool
    self_signed: bool
    der: bytes

    @property
    def names(self) -> tuple[str, ...]:
        """The names a search finds it by: SAN values, else the subject's common name."""
        values = [san.partition(":")[2] for san in self.sans]
        return tuple(sorted({v.lower() for v in values if v and len(v) <= NAME_MAX}))


def parse_der_certificate(der: bytes) -> x509.Certificate:
    """A certificate from untrusted bytes; anything cryptography cannot read is a ValueError (it
    raises InvalidVersion, which is not one, for a version field other than v1 and v3)."""
    try:
        return x509.load_der_x509_certificate(der)
    except x509.InvalidVersion as exc:
        raise ValueError(f"an X.509 version field of {exc.parsed_version} (only v1 and v3 are read)") from None


def facts_of(certificate: x509.Certificate) -> CertificateFacts:
    der = certificate.public_bytes(Encoding.DER)
    algorithm, size = _key(certificate)
    return CertificateFacts(
        fingerprint=certificate.fingerprint(hashes.SHA256()).hex(),
        subject=_name(certificate, issuer=False),
        issuer_dn=_name(certificate, issuer=True),
        serial=format(certificate.serial_number, "x") if certificate.serial_number >= 0 else "-",
        sans=_sans(certificate),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        key_algorithm=algorithm,
        key_size=size,
        signature_algorithm=_signature_algorithm(certificate),
        is_ca=_is_ca(certificate),
        self_signed=certificate.issuer == certificate.subject,
        der=der,
    )


def _name(certificate: x509.Certificate, *, issuer: bool) -> str:
    try:
        return (certificate.issuer if issuer else certificate.subject).rfc4514_string()
    except ValueError:
        return "(unreadable name)"


def _sans(certificate: x509.Certificate) -> tuple[str, ...]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return _common_name(certificate)
    except ValueError:  # a malformed extension elsewhere in the certificate
        return ()
    out: list[str] = []
    for name in extension.value:
        if isinstance(name, x509.DNSName):
            out.append(f"dns:{name.value}")
        elif isinstance(name, x509.IPAddress):
            value = name.value
            out.append(f"ip:{value}" if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address) else "ip:-")
        elif isinstance(name, x509.RFC822Name):
            out.append(f"email:{name.value}")
        elif isinstance(name, x509.UniformResourceIdentifier):
            out.append(f"uri:{name.value}")
    return tuple(out)


def _common_name(certificate: x509.Certificate) -> tuple[str, ...]:
    """A certificate without SANs (an old server, a client, a CA) is still found by its CN."""
    try:
        names = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    except ValueError:
        return ()
    return tuple(f"cn:{n.value}" for n in names if isinstance(n.value, str))


def _key(certificate: x509.Certificate) -> tuple[str, int]:
    try:
        key = certificate.public_key()
    except ValueError:  # an algorithm cryptography does not know
        return "unknown", 0
    if isinstance(key, rsa.RSAPublicKey):
        return "rsa", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ec", key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "ed448", 456
    if isinstance(key, dsa.DSAPublicKey):
        return "dsa", key.key_size
    return "unknown", 0


def _signature_algorithm(certificate: x509.Certificate) -> str:
    oid = certificate.signature_algorithm_oid
    name = oid._name
    return name if name and name != "Unknown OID" else oid.dotted_string


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, ValueError):
        return False
