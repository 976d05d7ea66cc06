"""LOAD-04: nonces handed out and never redeemed keep the nonce table bounded (real SQLite store)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from ca.clock import SystemClock
from ca.store.db import Database
from protocols.acme.nonces import SWEEP_EVERY, NonceService
from protocols.acme.store.nonces import NonceStore
from protocols.acme.store.tables import nonces_t

CAP = 1000
POOL = 64
# The most the table may hold: the cap, the SWEEP_EVERY nonces handed out between two sweeps, the
# pool and one refill stored ahead of use, and the part of one pool batch (all with one expiry)
# that a sweep keeps at its cut.
BOUND = CAP + SWEEP_EVERY + 3 * POOL


async def nonce_rows(store: NonceStore) -> int:
    def q(conn: Connection) -> int:
        return int(conn.execute(select(func.count()).select_from(nonces_t)).scalar_one())

    return await store.db.read(q)


@pytest.fixture
async def sqlite_store(ca_dir: Path) -> AsyncIterator[NonceStore]:
    db = Database(f"sqlite:///{ca_dir / 'tetra.db'}")
    try:
        yield NonceStore(db)
    finally:
        await db.close()


async def test_twenty_thousand_unredeemed_nonces_stay_within_the_cap(sqlite_store: NonceStore) -> None:
    """LOAD-04: 20,000 nonces that nobody redeems never leave more than cap + one sweep interval
    (+ the pool) in the table; the oldest are dropped (they fail to redeem) while the newest,
    still in the table, redeem once."""
    nonces = NonceService(sqlite_store, SystemClock(), lifetime=3600, pool=POOL, cap=CAP)
    oldest = await nonces.new()
    peak = 0
    for handed_out in range(2, 20_001):
        newest = await nonces.new()
        if handed_out % 250 == 0:
            peak = max(peak, await nonce_rows(sqlite_store))
    assert CAP < peak <= BOUND, peak
    assert await nonce_rows(sqlite_store) <= BOUND
    assert not await nonces.redeem(oldest)  # swept
    assert await nonces.redeem(newest)
    assert not await nonces.redeem(newest)
    await nonces.close()
