"""Header checks: transactionID (CMP-05), nonces (CMP-06) and messageTime (CMP-07)."""

from __future__ import annotations

import datetime as dt

import pytest

from ca.der import tlv
from protocols.cmp import checks
from protocols.cmp.der import children, read_tlv
from protocols.cmp.errors import CmpFailure, FailInfo
from protocols.cmp.message import PkiMessage, decode_message
from tests.unit.protocols.cmp.cmp_vectors import vector


def _with_header_octets(name: str, old: bytes, new: bytes) -> PkiMessage:
    """A vector whose transactionID/senderNonce/recipNonce ``old`` is replaced by ``new`` (the
    protection no longer verifies; these checks do not look at it)."""
    raw = vector(name)
    top = read_tlv(raw, 0, len(raw))
    header, *rest = children(raw, top)
    fields = []
    for field in children(raw, header):
        whole = field.whole(raw)
        if field.tag in (0xA4, 0xA5, 0xA6) and field.inner(raw) == tlv(0x04, old):
            whole = tlv(field.tag, tlv(0x04, new))
        fields.append(whole)
    return decode_message(tlv(0x30, tlv(0x30, *fields), *(part.whole(raw) for part in rest)))


def test_cmp_05_vectors_pass_and_a_short_transaction_id_is_bad_request() -> None:
    message = decode_message(vector("ir-mac.req.der"))
    tid = checks.transaction_id(message)
    short = _with_header_octets("ir-mac.req.der", tid, tid[:8])
    with pytest.raises(CmpFailure) as caught:
        checks.transaction_id(short)
    assert caught.value.fail_info is FailInfo.badRequest


def test_cmp_06_short_sender_nonce_is_bad_sender_nonce() -> None:
    message = decode_message(vector("ir-mac.req.der"))
    nonce = checks.sender_nonce(message)
    with pytest.raises(CmpFailure) as caught:
        checks.sender_nonce(_with_header_octets("ir-mac.req.der", nonce, nonce[:4]))
    assert caught.value.fail_info is FailInfo.badSenderNonce


def test_cmp_06_cert_conf_must_echo_our_last_nonce() -> None:
    ip = decode_message(vector("ir-mac.rsp.der"))
    cert_conf = decode_message(vector("ir-mac.certConf.der"))
    assert ip.sender_nonce is not None
    checks.recip_nonce(cert_conf, ip.sender_nonce)
    with pytest.raises(CmpFailure) as caught:
        checks.recip_nonce(cert_conf, bytes(16))
    assert caught.value.fail_info is FailInfo.badRecipientNonce
    with pytest.raises(CmpFailure):
        checks.recip_nonce(decode_message(vector("ir-mac.req.der")), ip.sender_nonce)  # an ir has none


def test_cmp_07_message_time_outside_the_skew_is_bad_time() -> None:
    message = decode_message(vector("ir-mac.req.der"))
    assert message.message_time is not None
    skew = dt.timedelta(minutes=5)
    checks.message_time(message, message.message_time + dt.timedelta(minutes=4), skew)
    for offset in (dt.timedelta(minutes=6), -dt.timedelta(days=1)):
        with pytest.raises(CmpFailure) as caught:
            checks.message_time(message, message.message_time + offset, skew)
        assert caught.value.fail_info is FailInfo.badTime
