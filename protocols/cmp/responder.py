"""One request PKIMessage in, one reply PKIMessage out: the order every message goes through.

1. Decode, bounded (badDataFormat for anything that is not a DER PKIMessage within max_body).
2. Authenticate by the protection (protocols/cmp/auth.py): MAC with a known secret, or a
   signature by a trusted certificate. From here on, every reply is protected the same way.
3. Header checks (protocols/cmp/checks.py): a 16-to-64-octet transactionID and senderNonce,
   messageTime near our clock.
4. The body's handler: enrol (ir, cr, p10cr, kur), poll (pollReq), confirm (certConf),
   revoke (rr), general (genm). Any other body is badRequest.

Every refusal on the way is an error message with one failInfo bit (`CmpFailure`; a core
refusal becomes one through protocols/cmp/errors.py's table). A refusal before the sender is
proven goes unprotected, as RFC 9483 §3.6.4 allows: we cannot MAC with a secret we could not
confirm, and the client still learns why.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable

from cryptography import x509

from ca.errors import CAError
from ca.interface import CoreApi
from ca.profiles.model import Profile
from protocols.cmp import bodies, checks
from protocols.cmp.auth import Authenticator, Sender
from protocols.cmp.config import CmpConfig
from protocols.cmp.errors import CmpFailure, FailInfo, failure_for
from protocols.cmp.exchange import Answer, Exchange
from protocols.cmp.message import PkiMessage, decode_message
from protocols.cmp.reply import NONCE_OCTETS, build_reply

log = logging.getLogger("tetra.cmp")

BodyHandler = Callable[[Exchange], Awaitable[Answer]]


class Responder:
    def __init__(
        self,
        core: CoreApi,
        config: CmpConfig,
        authenticator: Authenticator,
        handlers: dict[str, BodyHandler],
        name: x509.Name,
    ) -> None:
        self.core = core
        self.config = config
        self.authenticator = authenticator
        self.handlers = handlers
        self.name = name  # the sender of our replies: the CMP signing certificate's subject

    async def answer(self, profile: Profile, data: bytes) -> bytes:
        message: PkiMessage | None = None
        sender: Sender | None = None
        our_nonce = secrets.token_bytes(NONCE_OCTETS)
        try:
            message = decode_message(data, max_bytes=self.config.max_body)
            sender = await self.authenticator.sender(message)
            answer = await self._handle(profile, message, sender, our_nonce)
        except CmpFailure as failure:
            answer = self._refusal(failure, message)
        except CAError as error:
            answer = self._refusal(failure_for(error), message)
        protection = sender.reply_protection if sender is not None else None
        return await build_reply(
            message,
            self.name,
            answer.body,
            protection,
            implicit_confirm=answer.implicit_confirm,
            sender_nonce=our_nonce,
        )

    async def _handle(self, profile: Profile, message: PkiMessage, sender: Sender, our_nonce: bytes) -> Answer:
        transaction_id = checks.transaction_id(message)
        their_nonce = checks.sender_nonce(message)
        now = self.core.clock.now()
        checks.message_time(message, now, self.config.message_time_skew)
        handler = self.handlers.get(message.body_type)
        if handler is None:
            raise CmpFailure(FailInfo.badRequest, f"{message.body_type} is not a request this CA answers")
        exchange = Exchange(message, profile, sender, now, transaction_id, their_nonce, our_nonce)
        return await handler(exchange)

    @staticmethod
    def _refusal(failure: CmpFailure, message: PkiMessage | None) -> Answer:
        body_type = message.body_type if message is not None else "undecodable"
        log.info("cmp: %s refused: %s (%s)", body_type, failure.text, failure.fail_info.name)
        return Answer(bodies.error(failure))
