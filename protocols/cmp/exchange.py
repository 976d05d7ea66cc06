"""What each body handler gets (one received message, proven) and gives back (a reply body).

protocols/cmp/responder.py decodes, checks and authenticates a request, then hands the body
handler an `Exchange`; the handler returns an `Answer`, which the responder wraps into the reply
PKIMessage. ``our_nonce`` is chosen before the handler runs, so that a handler which stores the
transaction's state stores the senderNonce the reply will carry (a certConf or pollReq must
echo it: CMP-06).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ca.profiles.model import Profile
from protocols.cmp.auth import Sender
from protocols.cmp.message import PkiMessage


@dataclass(frozen=True)
class Exchange:
    message: PkiMessage
    profile: Profile
    sender: Sender
    now: dt.datetime
    transaction_id: bytes  # checked: 16 to 64 octets
    their_nonce: bytes  # the request's senderNonce, checked likewise
    our_nonce: bytes  # the senderNonce of our reply


@dataclass(frozen=True)
class Answer:
    body: bytes  # PKIBody DER (protocols/cmp/bodies.py)
    implicit_confirm: bool = False  # granted: the reply's header says so
