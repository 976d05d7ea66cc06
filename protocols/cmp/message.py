"""Decoding a received PKIMessage (RFC 9810 §5.1) into a frozen view, every failure one answer.

The bytes are first walked by `protocols.cmp.der.scan` (size cap, DER lengths, no trailing
bytes, bounded nesting), then header and body are decoded with pyasn1-alt-modules' RFC 9810
schema. Anything wrong, from any layer, is `CmpFailure(badDataFormat)`. The protection BIT
STRING and extraCerts are kept as received slices: the protection needs no schema, and
extraCerts are parsed by cryptography only when asked, per call, so a stream of refused
messages each with a fresh certificate parses nothing it does not use and grows no cache.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from pyasn1.codec.der import decoder as der_decoder
from pyasn1_alt_modules import rfc9810

from ca.der import encode_length
from protocols.cmp.config import MAX_MESSAGE_BYTES
from protocols.cmp.der import Tlv, children, scan
from protocols.cmp.errors import CmpFailure, FailInfo, bad_data_format

MAX_EXTRA_CERTS = 16
SUPPORTED_PVNO = (2, 3)  # cmp2000 and cmp2021 (RFC 9810 §7); we never use EnvelopedData
ID_IT_IMPLICIT_CONFIRM = str(rfc9810.id_it_implicitConfirm)


@contextmanager
def _malformed(what: str) -> Iterator[None]:
    """pyasn1 raises many exception types; every one of them is badDataFormat here."""
    try:
        yield
    except CmpFailure:
        raise
    except Exception as exc:  # the decoder boundary: pyasn1's exception types are not a contract
        raise bad_data_format(f"{what} cannot be decoded ({type(exc).__name__})") from None


def _decode(der: bytes, spec: Any, what: str) -> Any:
    with _malformed(what):
        value, rest = der_decoder.decode(der, asn1Spec=spec)
        if rest:
            raise bad_data_format(f"{what} has trailing bytes")
        return value


def _optional_octets(header: Any, name: str) -> bytes | None:
    field = header[name]
    return bytes(field) if field.isValue else None


@dataclass(frozen=True)
class PkiMessage:
    """A decoded PKIMessage. ``header`` and ``body`` are the pyasn1 values for the fields this
    view does not lift out; ``protected_part`` is the DER that the protection covers."""

    raw: bytes
    header: Any  # rfc9810.PKIHeader
    body: Any  # rfc9810.PKIBody
    body_type: str  # "ir", "cr", "certConf", ...
    protected_part: bytes  # SEQUENCE { header, body } from the bytes as received
    protection: bytes | None  # the protection BIT STRING's octets
    sender_der: bytes  # the sender GeneralName as received: a reply's recipient
    protection_alg_der: bytes | None  # the protectionAlg AlgorithmIdentifier as received
    extra_certs_der: tuple[bytes, ...]

    @property
    def pvno(self) -> int:
        return int(self.header["pvno"])

    @property
    def sender(self) -> Any:
        return self.header["sender"]

    @property
    def recipient(self) -> Any:
        return self.header["recipient"]

    @property
    def message_time(self) -> dt.datetime | None:
        field = self.header["messageTime"]
        if not field.isValue:
            return None
        with _malformed("messageTime"):
            when: dt.datetime = field.asDateTime
        if when.tzinfo is None:
            raise bad_data_format("messageTime has no time zone")
        return when.astimezone(dt.UTC)

    @property
    def protection_alg(self) -> Any | None:
        """The AlgorithmIdentifier (pyasn1) of the protection, or None when unprotected."""
        field = self.header["protectionAlg"]
        return field if field.isValue else None

    @property
    def sender_kid(self) -> bytes | None:
        return _optional_octets(self.header, "senderKID")

    @property
    def transaction_id(self) -> bytes | None:
        return _optional_octets(self.header, "transactionID")

    @property
    def sender_nonce(self) -> bytes | None:
        return _optional_octets(self.header, "senderNonce")

    @property
    def recip_nonce(self) -> bytes | None:
        return _optional_octets(self.header, "recipNonce")

    @property
    def implicit_confirm(self) -> bool:
        """Whether generalInfo asks for (or, in a reply, grants) implicit confirmation."""
        info = self.header["generalInfo"]
        return info.isValue and any(str(itav["infoType"]) == ID_IT_IMPLICIT_CONFIRM for itav in info)

    def extra_certs(self) -> tuple[x509.Certificate, ...]:
        """extraCerts, parsed now (not cached: see the module docstring). RFC 9483 §3.3: the
        first is the protection certificate when the message is signed."""
        with _malformed("an extraCerts certificate"):  # ValueError, InvalidVersion, warnings as errors
            return tuple(x509.load_der_x509_certificate(der) for der in self.extra_certs_der)


def _top_level(data: bytes, top: Tlv) -> tuple[Tlv, Tlv, Tlv | None, Tlv | None]:
    parts = children(data, top)
    if len(parts) < 2 or parts[0].tag != 0x30:
        raise bad_data_format("a PKIMessage is SEQUENCE { header, body, ... }")
    header, body, protection, extra = parts[0], parts[1], None, None
    for part in parts[2:]:
        if part.tag == 0xA0 and protection is None and extra is None:
            protection = part
        elif part.tag == 0xA1 and extra is None:
            extra = part
        else:
            raise bad_data_format("a PKIMessage has an unexpected field after its body")
    return header, body, protection, extra


def _protection_octets(data: bytes, field: Tlv) -> bytes:
    inner = children(data, field)
    if len(inner) != 1 or inner[0].tag != 0x03 or inner[0].end - inner[0].content < 1:
        raise bad_data_format("protection is not a BIT STRING")
    bits = inner[0].inner(data)
    if bits[0] != 0:
        raise bad_data_format("protection has unused bits")
    return bits[1:]


def _extra_certs(data: bytes, field: Tlv) -> tuple[bytes, ...]:
    inner = children(data, field)
    if len(inner) != 1 or inner[0].tag != 0x30:
        raise bad_data_format("extraCerts is not a SEQUENCE OF certificates")
    certs = children(data, inner[0])
    if not 0 < len(certs) <= MAX_EXTRA_CERTS:
        raise bad_data_format(f"extraCerts must hold 1 to {MAX_EXTRA_CERTS} certificates")
    if any(cert.tag != 0x30 for cert in certs):
        raise bad_data_format("extraCerts holds something that is not a certificate")
    return tuple(cert.whole(data) for cert in certs)


def decode_message(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> PkiMessage:
    """A PKIMessage from DER, bounded; every problem with the bytes is badDataFormat, an
    unsupported pvno is unsupportedVersion."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise bad_data_format("a PKIMessage must be bytes")
    if len(data) > max_bytes:
        raise bad_data_format(f"the PKIMessage is {len(data)} bytes, over the {max_bytes}-byte limit")
    data = bytes(data)
    top = scan(data)
    if top.tag != 0x30:
        raise bad_data_format("a PKIMessage is a SEQUENCE")
    header_tlv, body_tlv, protection_tlv, extra_tlv = _top_level(data, top)
    header = _decode(header_tlv.whole(data), rfc9810.PKIHeader(), "PKIHeader")
    body = _decode(body_tlv.whole(data), rfc9810.PKIBody(), "PKIBody")
    with _malformed("PKIHeader"):
        pvno = int(header["pvno"])
        body_type = str(body.getName())
    if pvno not in SUPPORTED_PVNO:
        raise CmpFailure(FailInfo.unsupportedVersion, "pvno must be 2 or 3")
    header_fields = children(data, header_tlv)
    algorithm = next((field for field in header_fields if field.tag == 0xA1), None)
    span = data[header_tlv.start : body_tlv.end]
    return PkiMessage(
        raw=data,
        header=header,
        body=body,
        body_type=body_type,
        protected_part=b"\x30" + encode_length(len(span)) + span,
        protection=_protection_octets(data, protection_tlv) if protection_tlv else None,
        sender_der=header_fields[1].whole(data),
        protection_alg_der=algorithm.inner(data) if algorithm else None,
        extra_certs_der=_extra_certs(data, extra_tlv) if extra_tlv else (),
    )
