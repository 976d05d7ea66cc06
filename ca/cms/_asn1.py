"""What the CMS modules share: input limits, the one exception boundary, certificate identifiers.

asn1crypto parses lazily, so a malformed inner field fails only when it is read, and
with whatever exception the failing decoder raises (ValueError, TypeError, KeyError,
IndexError, OverflowError...). Every read of peer-supplied CMS happens inside
`malformed()`, which turns anything but our own `CAError` into a MALFORMED refusal:
the protocols above map one exception type, never a crash.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca.der import tlv
from ca.errors import CAError, FailureReason

MAX_CMS_BYTES = 256 * 1024  # a SCEP PKCSReq with a chain of certificates is a few KiB
MAX_CERTIFICATES = 16
MAX_RECIPIENTS = 16
MAX_ATTRIBUTES = 32

OID_DATA = "1.2.840.113549.1.7.1"
OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_ENVELOPED_DATA = "1.2.840.113549.1.7.3"
OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
OID_SIGNING_TIME = "1.2.840.113549.1.9.5"


@contextmanager
def malformed(what: str) -> Iterator[None]:
    """Run peer-driven parsing; any decoder exception becomes CAError(MALFORMED)."""
    try:
        yield
    except CAError:
        raise
    except Exception as exc:  # the boundary: asn1crypto's exception types are not a stable contract
        raise CAError(f"{what} is malformed ({type(exc).__name__})", FailureReason.MALFORMED) from None


def load_content_info(der: bytes, expected: str, max_bytes: int, what: str) -> cms.ContentInfo:
    """A bounded, strict (no trailing bytes) ContentInfo of the expected content type."""
    if not isinstance(der, bytes | bytearray | memoryview):
        raise CAError(f"{what} must be bytes", FailureReason.MALFORMED)
    if len(der) > max_bytes:
        raise CAError(f"{what} is {len(der)} bytes, over the {max_bytes}-byte limit", FailureReason.MALFORMED)
    with malformed(what):
        info = cms.ContentInfo.load(bytes(der), strict=True)
        content_type = info["content_type"].dotted
        if content_type != expected:
            raise CAError(f"{what}: content type is {content_type}, expected {expected}", FailureReason.MALFORMED)
        return info


def asn1_certificate(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))


@lru_cache(maxsize=64)
def _parsed(certificate: x509.Certificate) -> asn1_x509.Certificate:
    """Cached, and read only (asn1crypto parses a field when first asked, then keeps it): every
    SCEP request names the same RA certificate and every reply is signed with it, and a parse
    of a certificate costs more than the RSA operation it is used beside."""
    return asn1_certificate(certificate)


@lru_cache(maxsize=64)
def issuer_and_serial_der(certificate: x509.Certificate) -> bytes:
    """The DER IssuerAndSerialNumber naming this certificate (RFC 5652 §10.2.4), its issuer as
    the certificate encodes it."""
    issuer = bytes(_parsed(certificate).issuer.dump())
    serial = bytes(core.Integer(certificate.serial_number).dump())
    return tlv(0x30, issuer, serial)


def identifies(identifier: cms.SignerIdentifier | cms.RecipientIdentifier, certificate: x509.Certificate) -> bool:
    """Whether a SignerIdentifier / RecipientIdentifier names this certificate.

    issuerAndSerialNumber is compared with RFC 5280 name matching (asn1crypto's Name
    equality; the same DER matches without it), subjectKeyIdentifier with the certificate's
    SKI extension.
    """
    if identifier.name == "issuer_and_serial_number":
        chosen = identifier.chosen
        if chosen["serial_number"].native != certificate.serial_number:
            return False
        issuer, ours = chosen["issuer"], _parsed(certificate).issuer
        return bool(issuer.dump() == ours.dump() or issuer == ours)
    if identifier.name == "subject_key_identifier":
        key_identifier = _parsed(certificate).key_identifier
        return key_identifier is not None and identifier.chosen.native == key_identifier
    return False


@lru_cache(maxsize=32)
def algorithm_identifier(kind: type[core.Sequence], name: str) -> bytes:
    """An AlgorithmIdentifier without parameters of its own, DER as asn1crypto encodes it (a NULL
    where its tables put one), made once per name: the replies are assembled from DER parts."""
    return bytes(kind({"algorithm": name}).dump())


def load_certificates(certificates: cms.CertificateSet | None, what: str) -> tuple[x509.Certificate, ...]:
    """The X.509 certificates of a CertificateSet (other choices skipped), bounded in number."""
    if certificates is None or not certificates:
        return ()
    if len(certificates) > MAX_CERTIFICATES:
        raise CAError(f"{what} carries over {MAX_CERTIFICATES} certificates", FailureReason.MALFORMED)
    out: list[x509.Certificate] = []
    for choice in certificates:
        if choice.name != "certificate":
            continue
        try:
            out.append(x509.load_der_x509_certificate(choice.chosen.dump()))
        except ValueError as exc:
            raise CAError(f"{what}: a certificate cannot be parsed: {exc}", FailureReason.MALFORMED) from None
    return tuple(out)
