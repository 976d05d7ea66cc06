"""CMP over HTTP (RFC 9811): POST /.well-known/cmp and /.well-known/cmp/p/<label>.

A request is a DER PKIMessage with Content-Type application/pkixcmp. Whatever reaches the
responder is answered 200 with a PKIMessage, error messages included (RFC 9811 §3.3); HTTP
errors are kept for what is not a CMP request at all: another content type (415), a path that
names no CMP profile (404). The server answers 405 and 413 itself (protocols/cmp/errors.py
words them).
"""

from __future__ import annotations

import logging

from ca.errors import CAError
from ca.interface import CoreApi
from ca.profiles.model import Profile
from protocols.base import BackgroundJob, ProtocolContext, WireRequest, WireResponse
from protocols.cmp.auth import Authenticator
from protocols.cmp.config import CmpConfig
from protocols.cmp.confirm import Confirmer, revoke_unconfirmed
from protocols.cmp.enrol import Enroller
from protocols.cmp.general import GeneralMessages
from protocols.cmp.reply import SignatureProtection
from protocols.cmp.responder import BodyHandler, Responder
from protocols.cmp.revoke import Revoker
from protocols.cmp.transactions import TransactionStore
from protocols.labels import ProfileLabels

log = logging.getLogger("tetra.cmp")

CONTENT_TYPE = "application/pkixcmp"
MAX_SWEEP_SECONDS = 15.0  # how often the unconfirmed certificates are looked for, at most


def _signing(core: CoreApi, config: CmpConfig) -> SignatureProtection | None:
    """The CMP signing key: the RA [cmp] ra names (an unknown name stops the start), or the only
    one. Without one, CMP still serves MAC-protected requests and refuses signed ones."""
    try:
        ra = core.ra(config.ra or None)
    except CAError:
        if config.ra:
            raise
        log.warning("cmp: no RA certificate to sign replies with ([cmp] ra); signed requests are refused")
        return None
    issuer = next((name for name in core.issuer_names if core.chain(name)[0].subject == ra.certificate.issuer), None)
    chain = core.chain(issuer) if issuer is not None else ()
    return SignatureProtection(ra.signer, ra.certificate, chain)


def _text(status: int, message: str) -> WireResponse:
    return WireResponse.text(status, f"{message}\n")


class CmpHandlers:
    def __init__(self, ctx: ProtocolContext[CmpConfig]) -> None:
        core, config = ctx.core, ctx.config
        self.core = core
        self.config = config
        self.labels: ProfileLabels = ctx.labels
        self.default_profile = config.default_profile or ctx.default_profile
        self.transactions = TransactionStore(core.state)
        signing = _signing(core, config)
        enroller = Enroller(core, config, self.transactions)
        handlers: dict[str, BodyHandler] = {
            "ir": enroller.enrol,
            "cr": enroller.enrol,
            "p10cr": enroller.enrol,
            "kur": enroller.enrol,
            "pollReq": enroller.poll,
            "certConf": Confirmer(core, self.transactions, enroller).cert_conf,
            "rr": Revoker(core).revoke,
            "genm": GeneralMessages(core, ctx.revocation.crl).genp,
        }
        name = (
            signing.certificate.subject
            if signing
            else core.chain(core.issuing_generation(core.default_issuer))[0].subject
        )
        self.responder = Responder(core, config, Authenticator(core, config, signing), handlers, name)

    @classmethod
    def create(cls, ctx: ProtocolContext[CmpConfig]) -> CmpHandlers:
        return cls(ctx)

    async def close(self) -> None:
        """Nothing of its own to release: the store and the keys belong to the core."""

    def jobs(self) -> tuple[BackgroundJob, ...]:
        """The sweep that revokes certificates whose certConf is overdue, run twice per
        confirm_wait (a short wait gets a prompt sweep), at least every 15 s."""
        interval = max(1.0, min(MAX_SWEEP_SECONDS, self.config.confirm_wait.total_seconds() / 2))
        return (BackgroundJob("cmp-unconfirmed", interval, lambda: revoke_unconfirmed(self.core, self.transactions)),)

    def _profile(self, req: WireRequest) -> Profile | None:
        label = req.match.get("label")
        name = self.labels.profile(label) if label is not None else self.default_profile
        profile = self.core.profiles.get(name) if name else None
        return profile if profile is not None and "cmp" in profile.protocols else None

    async def post(self, req: WireRequest) -> WireResponse:
        profile = self._profile(req)
        if profile is None:
            return _text(404, "no CMP profile is selected by this path")
        content_type = req.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != CONTENT_TYPE:
            return _text(415, f"a CMP request is sent as {CONTENT_TYPE}")
        reply = await self.responder.answer(profile, req.body)
        return WireResponse(200, {"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"}, reply)
