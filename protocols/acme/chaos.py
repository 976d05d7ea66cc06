"""Chaos mode (ACME-27): misbehave the way the ACME spec allows, so clients prove they cope.

Pebble-style and off by default: a fraction of the nonces handed out are never
honoured (the request carrying one fails with badNonce and a fresh nonce, which
RFC 8555 §6.5 tells clients to retry with), and each validation waits a random
time first (clients must poll, not assume). For test and staging servers only;
the server says so loudly at start-up.

The two nonces handed out after a refused one are always honoured: certbot's
`acme` library retries a badNonce once (with a nonce from newNonce, after the
one on the error), so a client that retries at once is never refused twice in
a row, and a chaos run fails only for clients that do not retry.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from protocols.acme.config import ChaosConfig

log = logging.getLogger("tetra.acme.chaos")
_SCALE = 1_000_000


def announce(chaos: ChaosConfig) -> None:
    if chaos.enabled:
        log.warning(
            "ACME CHAOS MODE IS ON: %.1f%% of nonces will be refused with badNonce and validations "
            "delayed up to %d ms ([acme.chaos]); never use this on a production CA",
            chaos.reject_nonce_fraction * 100,
            chaos.validation_delay_max_ms,
        )


def happens(fraction: float) -> bool:
    """True with probability `fraction`."""
    return fraction > 0 and secrets.randbelow(_SCALE) < fraction * _SCALE


class NonceChaos:
    """Picks the nonces to refuse: on average `fraction` of them, never two within three."""

    HONEST_AFTER_REFUSAL = 2

    def __init__(self, fraction: float) -> None:
        # After a refusal the next two are honest, so refusing with probability p otherwise
        # refuses p / (1 + 2p) of all nonces; solve for p.
        self._p = fraction / (1 - self.HONEST_AFTER_REFUSAL * fraction) if fraction > 0 else 0.0
        self._honest_left = 0

    def refuse_next(self) -> bool:
        if self._p <= 0:
            return False
        if self._honest_left:
            self._honest_left -= 1
            return False
        if happens(self._p):
            self._honest_left = self.HONEST_AFTER_REFUSAL
            return True
        return False


async def delay_validation(chaos: ChaosConfig) -> None:
    if chaos.validation_delay_max_ms > 0:
        await asyncio.sleep(secrets.randbelow(chaos.validation_delay_max_ms + 1) / 1000)
