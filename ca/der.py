"""The few DER moves cryptography does not offer: one element, splitting and assembling a Certificate."""

from __future__ import annotations


def _read_header(data: bytes, offset: int) -> tuple[int, int]:
    """Return (content start, content length) of the TLV at offset."""
    first = data[offset + 1]
    if first < 0x80:
        return offset + 2, first
    count = first & 0x7F
    if count == 0 or count > 4:
        raise ValueError("unsupported DER length")
    length = int.from_bytes(data[offset + 2 : offset + 2 + count], "big")
    return offset + 2 + count, length


def encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, *parts: bytes) -> bytes:
    """One DER element: ``tag``, the definite length, then the concatenated ``parts``."""
    body = b"".join(parts)
    return bytes([tag]) + encode_length(len(body)) + body


def oid(dotted: str) -> bytes:
    """A DER OBJECT IDENTIFIER from its dotted form (base-128 arcs, the first two folded)."""
    arcs = [int(arc) for arc in dotted.split(".")]
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return tlv(0x06, bytes(body))


def certificate_parts(der: bytes) -> tuple[bytes, bytes]:
    """(tbsCertificate TLV, signatureAlgorithm TLV) of a DER certificate."""
    start, _ = _read_header(der, 0)
    tbs_start, tbs_len = _read_header(der, start)
    tbs_end = tbs_start + tbs_len
    alg_start, alg_len = _read_header(der, tbs_end)
    return der[start:tbs_end], der[tbs_end : alg_start + alg_len]


def first_element(der: bytes) -> bytes:
    """The first element inside the outer one (a SEQUENCE's first field), as its bytes stand."""
    start, _ = _read_header(der, 0)
    inner_start, inner_len = _read_header(der, start)
    return der[start : inner_start + inner_len]


def assemble_certificate(tbs: bytes, algorithm: bytes, signature: bytes) -> bytes:
    """Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }"""
    bits = b"\x03" + encode_length(len(signature) + 1) + b"\x00" + signature
    body = tbs + algorithm + bits
    return b"\x30" + encode_length(len(body)) + body
