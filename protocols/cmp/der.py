"""A strict, bounded walk over DER before pyasn1 sees it, and the TLV slices CMP needs raw.

pyasn1's decoder recurses once per nesting level, accepts indefinite lengths, constructed
strings (BER) and non-minimal length octets. `scan` refuses all of these up front,
iteratively, in time linear in the input: a hostile message costs a loop over its bytes,
not a deep Python stack.
It also hands back the top-level pieces of a PKIMessage as slices of the received bytes,
because the protection is computed over header and body *as received* and because
extraCerts and the protection BIT STRING need no ASN.1 schema at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from ca.der import oid, tlv
from protocols.cmp.errors import bad_data_format

MAX_DEPTH = 32  # a PKIMessage with a CRMF request and a certificate nests about 15 deep


@dataclass(frozen=True)
class Tlv:
    """One element: its identifier octet and where its contents lie in the buffer."""

    tag: int
    start: int  # first octet of the identifier
    content: int  # first octet of the contents
    end: int  # one past the last octet of the contents

    def whole(self, data: bytes) -> bytes:
        return data[self.start : self.end]

    def inner(self, data: bytes) -> bytes:
        return data[self.content : self.end]


def read_tlv(data: bytes, offset: int, limit: int) -> Tlv:
    """The element at ``offset``, which must end by ``limit``; DER length rules enforced."""
    if offset + 2 > limit:
        raise bad_data_format("a DER element is truncated")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise bad_data_format("multi-octet DER tags do not occur in CMP")
    first = data[offset + 1]
    if first < 0x80:
        length, content = first, offset + 2
    else:
        count = first & 0x7F
        if count == 0:
            raise bad_data_format("indefinite length is BER, not DER")
        if count > 4 or offset + 2 + count > limit:
            raise bad_data_format("a DER length is too long or truncated")
        raw = data[offset + 2 : offset + 2 + count]
        length, content = int.from_bytes(raw, "big"), offset + 2 + count
        if length < 0x80 or raw[0] == 0:
            raise bad_data_format("a DER length is not in its shortest form")
    if content + length > limit:
        raise bad_data_format("a DER element runs past its container")
    return Tlv(tag, offset, content, content + length)


def children(data: bytes, parent: Tlv) -> list[Tlv]:
    """The elements directly inside a constructed element."""
    out: list[Tlv] = []
    offset = parent.content
    while offset < parent.end:
        child = read_tlv(data, offset, parent.end)
        out.append(child)
        offset = child.end
    return out


def _check_oid(body: bytes) -> None:
    """OBJECT IDENTIFIER arcs of at most 8 octets (below 2^56): every OID we know fits, and an
    arc of thousands of digits, which Python refuses to turn into a string, never gets in."""
    run = 0
    for octet in body:
        run = run + 1 if octet & 0x80 else 0
        if run >= 8:
            raise bad_data_format("an OBJECT IDENTIFIER arc is too long")
    if not body or body[-1] & 0x80:
        raise bad_data_format("an OBJECT IDENTIFIER is empty or truncated")


def scan(data: bytes, *, max_depth: int = MAX_DEPTH) -> Tlv:
    """Check the whole buffer is one DER element, nested at most ``max_depth`` deep; return it."""
    top = read_tlv(data, 0, len(data))
    if top.end != len(data):
        raise bad_data_format("trailing bytes after the PKIMessage")
    stack = [(top, 1)]
    while stack:
        element, depth = stack.pop()
        if not element.tag & 0x20:  # primitive
            if element.tag == 0x06:
                _check_oid(element.inner(data))
            continue
        if element.tag & 0xC0 == 0 and element.tag not in (0x30, 0x31):
            raise bad_data_format("a constructed string is BER, not DER")  # e.g. OCTET STRING in pieces
        if depth > max_depth:
            raise bad_data_format(f"nesting deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children(data, element))
    return top


def integer(value: int) -> bytes:
    """A DER INTEGER (two's complement, shortest form)."""
    size = (value + (value < 0)).bit_length() // 8 + 1
    return tlv(0x02, value.to_bytes(size, "big", signed=True))


def octet_string(value: bytes) -> bytes:
    return tlv(0x04, value)


def bit_string(value: bytes) -> bytes:
    """A BIT STRING of whole octets (no unused bits), as signatures and MACs are."""
    return tlv(0x03, b"\x00", value)


def sequence(*parts: bytes) -> bytes:
    return tlv(0x30, *parts)


def explicit(number: int, *parts: bytes) -> bytes:
    """A context-specific constructed tag [number] around ``parts`` (EXPLICIT tagging)."""
    return tlv(0xA0 | number, *parts)


def algorithm_identifier(dotted: str, parameters: bytes | None = None) -> bytes:
    """AlgorithmIdentifier; ``parameters`` is DER, or None to omit it."""
    return sequence(oid(dotted), parameters or b"")
