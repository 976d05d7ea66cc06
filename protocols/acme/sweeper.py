"""Settle orders a crash left in "processing" without waiting for a client to look (ST-02).

A client polling such an order settles it itself (orders.current_status): valid if the core
had stored the certificate, invalid with serverInternal after `stuck_after`. Orders nobody
reads again (the client gave up or died with the server) would otherwise stay "processing" in
the store for ever, holding their `replaces` claim. Every process sweeps; the status moves are
compare-and-set, so two sweepers (or a sweeper and a client) settle an order once.
"""

from __future__ import annotations

import logging

from protocols.acme.context import AcmeContext
from protocols.acme.orders import RECOVER_AFTER, current_status

log = logging.getLogger("tetra.acme.sweeper")

BATCH = 100  # orders settled per pass at most; the next pass takes the rest


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
