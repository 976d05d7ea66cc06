"""Anti-replay nonces (RFC 8555 §6.5) shared by every server process through the database.

Each process inserts nonces ahead of use in small batches (one commit per
batch), hands them out from memory, and redeems them with a DELETE whose
rowcount says whether this request is the only one to use it (SEC-02, ACME-21).
A storage error while redeeming rejects the request: anti-replay fails closed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import secrets
from collections import deque

from ca.clock import Clock
from protocols.acme.chaos import NonceChaos
from protocols.acme.row_sweep import RowSweep
from protocols.acme.store.nonces import NonceStore

log = logging.getLogger("tetra.acme.nonces")

NONCE_BYTES = 16
_SHAPE = re.compile(r"[A-Za-z0-9_-]{22}")
SWEEP_EVERY = 2000  # nonces issued between two sweeps of the table


def well_formed(nonce: str) -> bool:
    """Cheap shape check before touching the store (RFC 8555 §6.5.1: base64url)."""
    return bool(_SHAPE.fullmatch(nonce))


class NonceService:
    def __init__(
        self, store: NonceStore, clock: Clock, *, lifetime: int, pool: int, cap: int, chaos_reject: float = 0.0
    ) -> None:
        self._store = store
        self._chaos = NonceChaos(chaos_reject)
        self._clock = clock
        self._lifetime = dt.timedelta(seconds=lifetime)
        self._pool_size = pool
        self._cap = cap
        self._pool: deque[tuple[str, dt.datetime]] = deque()
        self._refill: asyncio.Task[None] | None = None
        self._sweeper = RowSweep("nonces", self._sweep, SWEEP_EVERY, log)

    async def new(self) -> str:
        """A fresh nonce that some later request may redeem once."""
        now = self._clock.now()
        # Hand out only nonces with most of their life left, so clients rarely see them expire.
        while self._pool and self._pool[0][1] - now < self._lifetime / 2:
            self._pool.popleft()
        if not self._pool:
            await self._fill()
        elif len(self._pool) < self._pool_size // 2 and self._refill is None:
            self._refill = asyncio.get_running_loop().create_task(self._background_fill())
        self._sweeper.count()
        if self._chaos.refuse_next():
            # Chaos mode (ACME-27): a well-formed nonce that was never stored, so the request that
            # carries it gets badNonce (with a fresh nonce) instead of being served.
            return secrets.token_urlsafe(NONCE_BYTES)
        return self._pool.popleft()[0]

    async def redeem(self, nonce: str) -> bool:
        """True exactly once per issued, unexpired nonce; raises StoreUnavailable on store errors."""
        if not well_formed(nonce):
            return False
        return await self._store.redeem(nonce, self._clock.now())

    async def _fill(self) -> None:
        if self._sweeper.running is not None:
            # No new rows until the sweep has cut the table back (LOAD-04): a sweep kept waiting
            # for the database (SQLite hands its write lock to the busy inserts first) would
            # otherwise let the table outgrow cap + SWEEP_EVERY by however fast nonces go out.
            await asyncio.shield(self._sweeper.running)
        expires = self._clock.now() + self._lifetime
        values = [secrets.token_urlsafe(NONCE_BYTES) for _ in range(self._pool_size)]
        await self._store.add(values, expires)
        self._pool.extend((v, expires) for v in values)

    async def _background_fill(self) -> None:
        try:
            await self._fill()
        except Exception as exc:  # the next new() fills synchronously and reports the error
            log.warning("nonce refill failed: %s", exc)
        finally:
            self._refill = None

    async def _sweep(self) -> int:
        return await self._store.sweep(self._clock.now(), self._cap)

    async def close(self) -> None:
        if self._refill is not None:
            self._refill.cancel()
        self._sweeper.cancel()
