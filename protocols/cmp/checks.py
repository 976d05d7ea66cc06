"""Header checks every CMP request goes through (RFC 9483 §3.1, §3.5), each with its failInfo.

A transaction is tied together by its transactionID and nonces: a request without a
128-bit transactionID or senderNonce cannot be bound to its replies (CMP-05, CMP-06), a
follow-up (certConf, pollReq) must echo the senderNonce we last sent as its recipNonce
(CMP-06), and a messageTime far from our clock is refused (CMP-07). The server (protocols/cmp/transactions.py)
keeps the state these compare against; these functions only compare.
"""

from __future__ import annotations

import datetime as dt
import hmac

from protocols.cmp.errors import CmpFailure, FailInfo
from protocols.cmp.message import PkiMessage

MIN_ID_OCTETS = 16  # RFC 9483 §3.1: 128 bits for transactionID and senderNonce
MAX_ID_OCTETS = 64


def transaction_id(message: PkiMessage) -> bytes:
    """The request's transactionID, if it is there and 16 to 64 octets (CMP-05: badRequest)."""
    value = message.transaction_id
    if value is None or not MIN_ID_OCTETS <= len(value) <= MAX_ID_OCTETS:
        raise CmpFailure(FailInfo.badRequest, f"transactionID must be {MIN_ID_OCTETS} to {MAX_ID_OCTETS} octets")
    return value


def sender_nonce(message: PkiMessage) -> bytes:
    """The request's senderNonce, if it is there and 16 to 64 octets (CMP-06: badSenderNonce)."""
    value = message.sender_nonce
    if value is None or not MIN_ID_OCTETS <= len(value) <= MAX_ID_OCTETS:
        raise CmpFailure(FailInfo.badSenderNonce, f"senderNonce must be {MIN_ID_OCTETS} to {MAX_ID_OCTETS} octets")
    return value


def recip_nonce(message: PkiMessage, expected: bytes) -> None:
    """A follow-up's recipNonce must be the senderNonce of our last reply (CMP-06)."""
    value = message.recip_nonce
    if value is None or not hmac.compare_digest(value, expected):
        raise CmpFailure(FailInfo.badRecipientNonce, "recipNonce is not the senderNonce of our last message")


def message_time(message: PkiMessage, now: dt.datetime, max_skew: dt.timedelta) -> None:
    """messageTime, when present, within ``max_skew`` of ``now`` (CMP-07: badTime)."""
    when = message.message_time
    if when is not None and abs(when - now) > max_skew:
        raise CmpFailure(FailInfo.badTime, f"messageTime {when.isoformat()} is more than {max_skew} from ours")
