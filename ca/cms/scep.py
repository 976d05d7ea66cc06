"""SCEP's signed attributes (RFC 8894 §3.2.1): the OIDs, and building / reading their values.

SCEP puts its whole protocol state in authenticated attributes of a SignedData. They
live here, beside the CMS code, so the SCEP protocol module builds replies with
`scep_attributes` and reads requests with `read_scep_attributes` and never touches DER.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from asn1crypto import core
from asn1crypto import x509 as asn1_x509

from ca.cms.signed import SignedAttribute
from ca.errors import CAError, FailureReason

_VERISIGN = "2.16.840.1.113733.1.9"
OID_MESSAGE_TYPE = f"{_VERISIGN}.2"
OID_PKI_STATUS = f"{_VERISIGN}.3"
OID_FAIL_INFO = f"{_VERISIGN}.4"
OID_SENDER_NONCE = f"{_VERISIGN}.5"
OID_RECIPIENT_NONCE = f"{_VERISIGN}.6"
OID_TRANSACTION_ID = f"{_VERISIGN}.7"
OID_FAIL_INFO_TEXT = "1.3.6.1.5.5.7.24.1"  # id-scep-failInfoText, RFC 8894 §3.2.1.4

NONCE_BYTES = 16  # RFC 8894 §3.2.1.5
MAX_TRANSACTION_ID = 256


class MessageType(enum.Enum):
    CERT_REP = "3"
    RENEWAL_REQ = "17"
    PKCS_REQ = "19"
    CERT_POLL = "20"
    GET_CERT = "21"
    GET_CRL = "22"


class PkiStatus(enum.Enum):
    SUCCESS = "0"
    FAILURE = "2"
    PENDING = "3"


class FailInfo(enum.Enum):
    BAD_ALG = "0"
    BAD_MESSAGE_CHECK = "1"
    BAD_REQUEST = "2"
    BAD_TIME = "3"
    BAD_CERT_ID = "4"


@dataclass(frozen=True)
class ScepAttributes:
    """The SCEP attributes of one message; absent ones are None."""

    message_type: MessageType
    transaction_id: str
    sender_nonce: bytes | None = None
    recipient_nonce: bytes | None = None
    pki_status: PkiStatus | None = None
    fail_info: FailInfo | None = None
    fail_info_text: str | None = None


def scep_attributes(
    *,
    message_type: MessageType,
    transaction_id: str,
    sender_nonce: bytes | None = None,
    recipient_nonce: bytes | None = None,
    pki_status: PkiStatus | None = None,
    fail_info: FailInfo | None = None,
    fail_info_text: str | None = None,
) -> list[SignedAttribute]:
    """Attributes for ``sign_data(attributes=...)``: PrintableStrings and OCTET STRINGs as §3.2.1 says."""
    out: list[SignedAttribute] = [
        (OID_MESSAGE_TYPE, (core.PrintableString(message_type.value).dump(),)),
        (OID_TRANSACTION_ID, (core.PrintableString(transaction_id).dump(),)),
    ]
    if sender_nonce is not None:
        out.append((OID_SENDER_NONCE, (core.OctetString(sender_nonce).dump(),)))
    if recipient_nonce is not None:
        out.append((OID_RECIPIENT_NONCE, (core.OctetString(recipient_nonce).dump(),)))
    if pki_status is not None:
        out.append((OID_PKI_STATUS, (core.PrintableString(pki_status.value).dump(),)))
    if fail_info is not None:
        out.append((OID_FAIL_INFO, (core.PrintableString(fail_info.value).dump(),)))
    if fail_info_text is not None:
        out.append((OID_FAIL_INFO_TEXT, (core.UTF8String(fail_info_text).dump(),)))
    return out


def _single(attrs: Mapping[str, tuple[bytes, ...]], oid: str) -> bytes | None:
    values = attrs.get(oid)
    if values is None:
        return None
    if len(values) != 1:
        raise CAError(f"SCEP attribute {oid} must have exactly one value", FailureReason.MALFORMED)
    return values[0]


def _text(attrs: Mapping[str, tuple[bytes, ...]], oid: str, kind: type[core.AbstractString]) -> str | None:
    der = _single(attrs, oid)
    if der is None:
        return None
    try:
        value = kind.load(der, strict=True).native
    except Exception:  # asn1crypto: ValueError, TypeError, UnicodeDecodeError...
        raise CAError(f"SCEP attribute {oid} is not a {kind.__name__}", FailureReason.MALFORMED) from None
    return str(value)


def _nonce(attrs: Mapping[str, tuple[bytes, ...]], oid: str) -> bytes | None:
    der = _single(attrs, oid)
    if der is None:
        return None
    try:
        value = core.OctetString.load(der, strict=True).native
    except Exception:
        raise CAError(f"SCEP attribute {oid} is not an OCTET STRING", FailureReason.MALFORMED) from None
    if not isinstance(value, bytes) or len(value) != NONCE_BYTES:
        raise CAError(f"SCEP nonce {oid} must be {NONCE_BYTES} octets", FailureReason.MALFORMED)
    return value


def _enum(kind: type[enum.Enum], value: str | None, name: str) -> enum.Enum | None:
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        raise CAError(f"SCEP {name} {value!r} is not known", FailureReason.MALFORMED) from None


def read_scep_attributes(attrs: Mapping[str, tuple[bytes, ...]]) -> ScepAttributes:
    """The SCEP attributes of a verified SignedData (`SignedMessage.signed_attributes`).

    messageType and transactionID are required; every value is checked for its type.
    """
    message_type = _enum(MessageType, _text(attrs, OID_MESSAGE_TYPE, core.PrintableString), "messageType")
    transaction_id = _text(attrs, OID_TRANSACTION_ID, core.PrintableString)
    if not isinstance(message_type, MessageType) or transaction_id is None:
        raise CAError("SCEP message lacks messageType or transactionID", FailureReason.MALFORMED)
    if not 0 < len(transaction_id) <= MAX_TRANSACTION_ID:
        raise CAError("SCEP transactionID is empty or too long", FailureReason.MALFORMED)
    status = _enum(PkiStatus, _text(attrs, OID_PKI_STATUS, core.PrintableString), "pkiStatus")
    fail = _enum(FailInfo, _text(attrs, OID_FAIL_INFO, core.PrintableString), "failInfo")
    return ScepAttributes(
        message_type=message_type,
        transaction_id=transaction_id,
        sender_nonce=_nonce(attrs, OID_SENDER_NONCE),
        recipient_nonce=_nonce(attrs, OID_RECIPIENT_NONCE),
        pki_status=status if isinstance(status, PkiStatus) else None,
        fail_info=fail if isinstance(fail, FailInfo) else None,
        fail_info_text=_text(attrs, OID_FAIL_INFO_TEXT, core.UTF8String),
    )


class IssuerAndSubject(core.Sequence):  # type: ignore[misc]
    """CertPoll's (GetCertInitial's) content, RFC 8894 §3.3.3: which enrolment is polled for."""

    _fields: ClassVar[list[tuple[str, type[core.Asn1Value]]]] = [
        ("issuer", asn1_x509.Name),
        ("subject", asn1_x509.Name),
    ]
