"""Decoding PKIMessages: every openssl vector, and every kind of bad bytes answered badDataFormat."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ca.der import encode_length, tlv
from protocols.cmp.config import MAX_MESSAGE_BYTES, MacLimits
from protocols.cmp.der import explicit, integer, sequence
from protocols.cmp.errors import CmpFailure, FailInfo
from protocols.cmp.message import decode_message
from protocols.cmp.protection import is_mac_protected, verify_mac, verify_signature_protection
from tests.unit.protocols.cmp.cmp_vectors import REFERENCE, SECRET, certificate, mac_vectors, signed_vectors, vector

EXPECTED_BODIES = {
    "ir": "ir",
    "cr": "cr",
    "p10cr": "p10cr",
    "kur": "kur",
    "rr": "rr",
    "genm": "genm",
    "genm-template": "genm",
    "ir-implicit": "ir",
    "error": "cr",
}
REPLY_BODIES = {"ir": "ip", "ir-implicit": "ip", "cr": "cp", "p10cr": "cp", "kur": "kup", "rr": "rp", "genm": "genp"}


def _refused(data: bytes, fail_info: FailInfo = FailInfo.badDataFormat) -> CmpFailure:
    with pytest.raises(CmpFailure) as caught:
        decode_message(data)
    assert caught.value.fail_info is fail_info, caught.value.text
    return caught.value


@pytest.mark.parametrize("name", mac_vectors() + signed_vectors())
def test_every_openssl_vector_decodes(name: str) -> None:
    message = decode_message(vector(name))
    assert message.pvno == 2
    assert message.transaction_id is not None and len(message.transaction_id) == 16
    assert message.sender_nonce is not None and len(message.sender_nonce) == 16
    assert message.message_time is not None
    assert message.protection is not None and message.protection_alg is not None
    prefix = name.split(".")[0].rsplit("-", 1)[0]
    kind = name.split(".")[1]
    if kind == "req":
        assert message.body_type == EXPECTED_BODIES[prefix]
    elif kind == "rsp":
        assert message.body_type == ("error" if prefix == "error" else REPLY_BODIES.get(prefix, "genp"))
    if name.endswith("-mac.req.der"):
        assert message.sender_kid == REFERENCE
    if "-sig." in name:
        assert message.extra_certs()[0].subject in (
            certificate("client.pem").subject,
            certificate("server.pem").subject,
        )
    assert message.implicit_confirm == name.startswith("ir-implicit")


def test_protected_part_is_header_and_body_as_received() -> None:
    raw = vector("ir-mac.req.der")
    part = decode_message(raw).protected_part
    header, body = _top_parts(part)
    assert header + body == b"".join(_top_parts(raw)[:2])


def test_polling_vectors_carry_waiting_and_poll_bodies() -> None:
    assert decode_message(vector("poll-mac.pollReq.der")).body_type == "pollReq"
    poll_rep = decode_message(vector("poll-mac.pollRep.der"))
    assert poll_rep.body_type == "pollRep"
    waiting = decode_message(vector("poll-mac.ip-waiting.der"))
    assert int(waiting.body["ip"]["response"][0]["status"]["status"]) == 3  # waiting


def test_unsupported_pvno_is_unsupported_version() -> None:
    raw = bytearray(vector("ir-mac.req.der"))
    at = raw.index(bytes.fromhex("020102"))  # the first INTEGER 2 is the header's pvno
    raw[at + 2] = 9
    _refused(bytes(raw), FailInfo.unsupportedVersion)


def test_a_huge_pvno_is_unsupported_version_not_a_crash() -> None:
    raw = vector("ir-mac.req.der")
    header, body, *rest = _top_parts(raw)
    header_fields = _top_parts(header)
    huge = sequence(integer(10**20_000), *header_fields[1:])
    _refused(sequence(huge, body, *rest), FailInfo.unsupportedVersion)


def test_an_oid_with_a_huge_arc_is_refused() -> None:
    huge_arc = b"\x06" + encode_length(3001) + b"\x2a" + b"\xff" * 2999 + b"\x01"
    assert "arc" in _refused(sequence(sequence(huge_arc), explicit(19, b"\x05\x00"))).text


def test_oversize_is_refused_before_decoding() -> None:
    big = sequence(b"\x04" + encode_length(MAX_MESSAGE_BYTES) + bytes(MAX_MESSAGE_BYTES))
    assert "limit" in _refused(big).text


def test_trailing_bytes_are_refused() -> None:
    _refused(vector("ir-mac.req.der") + b"\x00")


def test_deep_nesting_is_refused_without_recursion() -> None:
    deep = b"\x05\x00"
    for _ in range(5000):  # far past Python's recursion limit, were the walk recursive
        deep = sequence(deep)
    assert "nesting" in _refused(deep).text


def test_indefinite_length_is_ber_not_der() -> None:
    _refused(b"\x30\x80\x05\x00\x00\x00")


def test_constructed_octet_string_is_ber_not_der() -> None:
    assert "constructed" in _refused(sequence(tlv(0x24, tlv(0x04, b"ab"), tlv(0x04, b"cd")))).text


def test_non_minimal_length_is_refused() -> None:
    _refused(b"\x30\x81\x02\x05\x00")


@pytest.mark.parametrize(
    "data",
    [b"", b"\x30", b"\x30\x05\x05\x00", b"\x04\x00", sequence(), sequence(sequence()), b"\x1f\x01\x00"],
)
def test_truncated_or_not_a_pkimessage(data: bytes) -> None:
    _refused(data)


def test_header_that_is_not_a_pkiheader() -> None:
    _refused(sequence(sequence(integer(2)), explicit(19, b"\x05\x00")))


def test_extra_certs_are_parsed_only_when_asked() -> None:
    """A message whose extraCerts hold junk decodes (nothing parsed, nothing kept); asking for
    the certificates is what refuses it."""
    raw = vector("ir-mac.req.der")
    junk = explicit(1, sequence(sequence(integer(1))))
    forged = sequence(*_top_parts(raw), junk)
    message = decode_message(forged)
    assert message.extra_certs_der == (sequence(integer(1)),)
    with pytest.raises(CmpFailure) as caught:
        message.extra_certs()
    assert caught.value.fail_info is FailInfo.badDataFormat


def _top_parts(raw: bytes) -> list[bytes]:
    from protocols.cmp.der import children, read_tlv

    top = read_tlv(raw, 0, len(raw))
    return [part.whole(raw) for part in children(raw, top)]


def test_an_extra_cert_with_an_impossible_version_is_bad_data_format() -> None:
    raw = vector("ir-sig.req.der")
    cert = decode_message(raw).extra_certs_der[0]
    broken = cert.replace(bytes.fromhex("a003020102"), bytes.fromhex("a00302014d"), 1)  # v3 -> "v78"
    message = decode_message(raw.replace(cert, broken))
    with pytest.raises(CmpFailure) as caught:
        message.extra_certs()
    assert caught.value.fail_info is FailInfo.badDataFormat


def test_unknown_field_after_body_is_refused() -> None:
    raw = vector("ir-mac.req.der")
    _refused(sequence(*_top_parts(raw), tlv(0xA5, b"\x05\x00")))


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_mutated_vectors_never_escape_as_anything_but_cmp_failure(data: st.DataObject) -> None:
    """Decoding and checking the protection of damaged vectors: a CmpFailure or success, never
    another exception (a crash would become an HTTP 500 instead of a CMP error message)."""
    raw = bytearray(vector(data.draw(st.sampled_from(["ir-mac.req.der", "ir-sig.req.der", "genm-mac.rsp.der"]))))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        message = decode_message(bytes(raw))
        _ = (message.message_time, message.implicit_confirm, message.transaction_id)
        if is_mac_protected(message):
            verify_mac(message, SECRET, MacLimits())
        elif message.extra_certs():
            verify_signature_protection(message, message.extra_certs()[0])
    except CmpFailure:
        pass
