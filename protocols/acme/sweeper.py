"""Settle orders (ST-02) and challenges (ST-19) a crash left in "processing", without waiting
for a client to look.

A client polling such an order settles it itself (orders.current_status): valid if the core
had stored the certificate, invalid with serverInternal after `stuck_after`. Orders nobody
reads again (the client gave up or died with the server) would otherwise stay "processing" in
the store for ever, holding their `replaces` claim. Every process sweeps; the status moves are
compare-and-set, so two sweepers (or a sweeper and a client) settle an order once.
"""

from __future__ import annotations

import datetime as dt
import logging

from protocols.acme.authorizations import Validations, validate_and_record
from protocols.acme.context import AcmeContext
from protocols.acme.orders import RECOVER_AFTER, current_status
from protocols.acme.records import Authz, Challenge
from protocols.acme.store.authorizations import MAX_VALIDATION_ATTEMPTS

log = logging.getLogger("tetra.acme.sweeper")

BATCH = 100  # orders or challenges settled per pass at most; the next pass takes the rest


class StuckOrderSweeper:
    def __init__(self, ctx: AcmeContext) -> None:
        self._ctx = ctx
        # Often enough that an order fails within a quarter of stuck_after of its deadline.
        self.interval = max(1.0, min(60.0, ctx.config.stuck_after / 4))

    async def sweep_once(self) -> int:
        """Settle what can be settled now; the number of orders that left processing."""
        ctx = self._ctx
        settled = 0
        for order, authzs in await ctx.orders.processing_since(ctx.clock.now() - RECOVER_AFTER, BATCH):
            if (await current_status(ctx, order, authzs)).status != "processing":
                settled += 1
        return settled

    async def sweep_and_log(self) -> None:
        """One pass as the server's job runner calls it (every ``interval`` seconds)."""
        if settled := await self.sweep_once():
            log.info("settled %d order(s) left in processing", settled)


INTERRUPTED = {
    "type": "urn:ietf:params:acme:error:serverInternal",
    "detail": "validation was interrupted by a server restart; place a new order",
    "status": 500,
}


class StuckChallengeSweeper:
    """Resume or fail challenges a crash left in "processing" (ST-19).

    Validation runs in the process that answered the client's POST; killed mid-validation, it
    left the challenge processing and its authorization pending for its whole lifetime (days),
    with clients polling it all that while. Once a challenge has been processing for longer
    than a live validation can take (`AcmeConfig.challenge_stuck_after`), this sweeper, in
    every process, takes it over by compare-and-set and validates it again, at most
    MAX_VALIDATION_ATTEMPTS times in all; after that, or once its authorization is no longer
    pending, the challenge fails with serverInternal, which fails the authorization and the
    order, and the client starts anew.
    """

    def __init__(self, ctx: AcmeContext, validations: Validations) -> None:
        self._ctx = ctx
        self._validations = validations
        self.interval = max(1.0, min(60.0, ctx.config.challenge_stuck_after / 4))

    async def sweep_once(self) -> int:
        """Resume or fail the stale challenges; how many this pass took on."""
        ctx = self._ctx
        now = ctx.clock.now()
        stale_before = now - dt.timedelta(seconds=ctx.config.challenge_stuck_after)
        taken = 0
        for challenge, authz, thumbprint in await ctx.authzs.stale_challenges(stale_before, BATCH):
            if challenge.attempts < MAX_VALIDATION_ATTEMPTS and authz.current_status(now) == "pending":
                taken += await self._resume(challenge, authz, thumbprint, stale_before, now)
            else:
                taken += await self._fail(challenge, authz, stale_before, now)
        return taken

    async def _resume(
        self, challenge: Challenge, authz: Authz, thumbprint: str, stale_before: dt.datetime, now: dt.datetime
    ) -> bool:
        if not await self._ctx.authzs.resume_challenge(challenge.id, stale_before, now):
            return False  # another process (or the client's POST) took it first
        log.warning("challenge %d: its validation was interrupted; validating again", challenge.id)
        key_auth = f"{challenge.token}.{thumbprint}"  # RFC 8555 §8.1, as jwk.key_authorization
        self._validations.start(validate_and_record(self._ctx, challenge, authz, key_auth))
        return True

    async def _fail(self, challenge: Challenge, authz: Authz, stale_before: dt.datetime, now: dt.datetime) -> bool:
        if not await self._ctx.authzs.finish_challenge(
            challenge, authz, ok=False, error=INTERRUPTED, now=now, valid_until=now, stale_before=stale_before
        ):
            return False  # decided, or taken over, since it was listed
        log.warning("challenge %d: validation interrupted %d time(s); failed", challenge.id, challenge.attempts)
        return True

    async def sweep_and_log(self) -> None:
        """One pass as the server's job runner calls it; each challenge taken on is logged."""
        await self.sweep_once()
