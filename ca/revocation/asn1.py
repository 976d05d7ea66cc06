"""Just enough DER to write CRLs and OCSP responses fast, and to bound hostile input.

cryptography's CRL builder copies its entry list on every addition and can not put
several SingleResponses in one OCSP response, so both are encoded here from
fixed-shape parts and signed as bytes, as ca/issuer.py does for certificates. The
reader only walks tag/length headers: it bounds depth and node count before a
full parser sees the bytes (DOS-02, DOS-03).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ca.der import encode_length, oid

SEQUENCE = 0x30
UTC_TIME_LIMIT = dt.datetime(2050, 1, 1, tzinfo=dt.UTC)


class DerError(ValueError):
    """Bytes that are not the DER we accept; the message says where."""


# -- writing ----------------------------------------------------------------------------


def tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + encode_length(len(body)) + body


def seq(*parts: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(parts))


def explicit(number: int, body: bytes) -> bytes:
    """[number] EXPLICIT, constructed context tag."""
    return tlv(0xA0 | number, body)


def integer(value: int) -> bytes:
    """A DER INTEGER for a non-negative value (serials, CRL numbers)."""
    if value < 0:
        raise ValueError("negative INTEGER not supported here")
    return tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def serial_from_hex(text: str) -> bytes:
    """INTEGER TLV straight from the store's lowercase hex serial, without int()."""
    if len(text) % 2:
        text = "0" + text
    body = bytes.fromhex(text)
    if body[0] & 0x80:
        body = b"\x00" + body
    return b"\x02" + encode_length(len(body)) + body


def octet_string(value: bytes) -> bytes:
    return tlv(0x04, value)


def boolean_true() -> bytes:
    return b"\x01\x01\xff"


def enumerated(value: int) -> bytes:
    return tlv(0x0A, bytes((value,)))


def generalized_time(at: dt.datetime) -> bytes:
    """GeneralizedTime to the second in UTC, no fraction (RFC 5280 §4.1.2.5.2)."""
    return tlv(0x18, at.astimezone(dt.UTC).strftime("%Y%m%d%H%M%SZ").encode())


def x509_time(at: dt.datetime) -> bytes:
    """UTCTime through 2049, GeneralizedTime after (RFC 5280 §5.1.2.4)."""
    at = at.astimezone(dt.UTC)
    if at < UTC_TIME_LIMIT:
        return tlv(0x17, at.strftime("%y%m%d%H%M%SZ").encode())
    return generalized_time(at)


def extension(oid_der: bytes, value: bytes, critical: bool = False) -> bytes:
    """Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }"""
    return seq(oid_der, boolean_true() if critical else b"", octet_string(value))


def x509_extension(ext: x509.ExtensionType, critical: bool = False) -> bytes:
    """Encode one of cryptography's extension values (AKI, CRLNumber, IDP...)."""
    return extension(oid(ext.oid.dotted_string), ext.public_bytes(), critical)


def signed(tbs: bytes, algorithm: bytes, signature: bytes) -> bytes:
    """SEQUENCE { tbs, signatureAlgorithm, signature BIT STRING }: CertificateList and BasicOCSPResponse."""
    return seq(tbs, algorithm, tlv(0x03, b"\x00" + signature))


# -- reading ----------------------------------------------------------------------------


def header(data: bytes, offset: int, end: int | None = None) -> tuple[int, int, int]:
    """(tag, content start, content end) of the TLV at offset; strict DER lengths only."""
    end = len(data) if end is None else end
    if offset + 2 > end:
        raise DerError(f"truncated header at {offset}")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DerError(f"high tag number at {offset}")
    first = data[offset + 1]
    start = offset + 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise DerError(f"indefinite length at {offset}")
    else:
        count = first & 0x7F
        if count > 4 or start + count > end:
            raise DerError(f"bad length at {offset}")
        length = int.from_bytes(data[start : start + count], "big")
        if length < 0x80 or data[start] == 0:
            raise DerError(f"non-minimal length at {offset}")
        start += count
    if start + length > end:
        raise DerError(f"length past the end at {offset}")
    return tag, start, start + length


def children(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(tag, element start, content start, content end) of each element in [start, end)."""
    offset = start
    while offset < end:
        tag, body, stop = header(data, offset, end)
        yield tag, offset, body, stop
        offset = stop


def check_shape(data: bytes, *, max_depth: int, max_nodes: int) -> None:
    """Walk every constructed element without recursion; refuse deep or huge structures.

    Primitive contents (OCTET STRING values, BIT STRINGs) are not looked into:
    parsers treat them as opaque, so their inner nesting does not reach a stack.
    """
    tag, body, stop = header(data, 0)
    if stop != len(data):
        raise DerError("trailing bytes after the outer element")
    stack = [(body, stop, tag, 1)]
    nodes = 1
    while stack:
        offset, end, parent, depth = stack.pop()
        if not parent & 0x20:
            continue
        if depth >= max_depth:
            raise DerError(f"nesting deeper than {max_depth}")
        for child_tag, _, child_body, child_end in children(data, offset, end):
            nodes += 1
            if nodes > max_nodes:
                raise DerError(f"more than {max_nodes} elements")
            if child_tag & 0x20:
                stack.append((child_body, child_end, child_tag, depth + 1))


def certificate_subject(cert: x509.Certificate) -> bytes:
    """The subject Name exactly as encoded in the certificate (CRL-03 wants it byte-identical)."""
    tbs = cert.tbs_certificate_bytes
    _, body, stop = header(tbs, 0)
    elements = [(start, end) for _, start, _, end in children(tbs, body, stop)]
    first_tag = tbs[elements[0][0]]
    subject_index = 5 if first_tag == 0xA0 else 4  # [0] version, serial, signature, issuer, validity, subject
    start, end = elements[subject_index]
    return tbs[start:end]


def public_key_bits(public_key: object) -> bytes:
    """The subjectPublicKey BIT STRING contents, without the unused-bits octet (RFC 6960 §4.1.1)."""
    spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]
    assert isinstance(spki, bytes)
    _, body, stop = header(spki, 0)
    parts = list(children(spki, body, stop))
    _, _, bits_start, bits_end = parts[1]
    return spki[bits_start + 1 : bits_end]
