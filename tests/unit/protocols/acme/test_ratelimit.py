"""ACME-25: rate-limit buckets in the real store (SQLite and PostgreSQL), shared and persistent."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest

from ca.clock import FrozenClock
from ca.enrollment import Identifier
from ca.store.db import Database, Tx
from ca.store.tables import rate_limits
from protocols.acme.config import RateLimits
from protocols.acme.ratelimit import Charges, RateLimiter, Refusal, address_key, registered_domain

START = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
LIMITS = RateLimits(
    window_seconds=3600,
    orders_per_account=4,
    orders_per_identifier=3,
    identifier_window_seconds=7 * 86400,
    accounts_per_ip=2,
)


@pytest.fixture
async def db(db_url: str, db_mode: str) -> AsyncIterator[Database]:
    """Both drivers per backend: the upsert's multi-row RETURNING must work on each."""
    database = Database(db_url, mode=db_mode)
    try:
        yield database
    finally:
        await database.close()


async def spend(db: Database, charges: Charges) -> Refusal | None:
    def w(tx: Tx) -> Refusal | None:
        return charges.spend(tx.conn)

    return await db.write(w)


async def buckets(db: Database) -> dict[str, float]:
    rows = await db.read(lambda conn: conn.execute(rate_limits.select()).all())
    return {r.key: r.tat for r in rows}


def dns(name: str) -> Identifier:
    return Identifier("dns", name)


async def test_limit_per_window_then_room_again(db: Database) -> None:
    """N orders pass, the next is refused with a Retry-After that is exactly enough."""
    clock = FrozenClock(START)
    limiter = RateLimiter(LIMITS, clock, db)
    for i in range(4):
        assert await spend(db, limiter.new_order(1, [dns(f"www.example{i}.org")])) is None
        clock.advance(dt.timedelta(seconds=1))
    refusal = await spend(db, limiter.new_order(1, [dns("y.example.net")]))
    assert refusal is not None and refusal.charge.key == "acme:account:1"
    # One step is 900 s; 4 s have passed since the first order.
    assert refusal.retry_after == 896
    problem = refusal.problem()
    assert problem.status == 429 and problem.type == "rateLimited" and problem.retry_after == 896
    clock.advance(dt.timedelta(seconds=895))
    assert await spend(db, limiter.new_order(1, [dns("y.example.net")])) is not None
    clock.advance(dt.timedelta(seconds=1))
    assert await spend(db, limiter.new_order(1, [dns("y.example.net")])) is None
    # Another account has its own bucket.
    assert await spend(db, limiter.new_order(2, [dns("z.example.com")])) is None


async def test_registered_domain_is_one_bucket_and_refusal_refunds(db: Database) -> None:
    """Names under one registered domain share a bucket; a refused request spends nothing."""
    clock = FrozenClock(START)
    limiter = RateLimiter(LIMITS, clock, db)
    for account in (1, 2, 3):
        names = [dns("a.example.co.uk"), dns("b.c.example.co.uk"), dns("example.co.uk")]
        assert await spend(db, limiter.new_order(account, names)) is None
    before = await buckets(db)
    assert "acme:domain:example.co.uk" in before
    assert not any(k.endswith("co.uk") and k != "acme:domain:example.co.uk" for k in before)
    refusal = await spend(db, limiter.new_order(4, [dns("fresh.example"), dns("www.example.co.uk")]))
    assert refusal is not None and refusal.charge.key == "acme:domain:example.co.uk"
    # The order was refused, so account 4 and fresh.example were not charged either.
    after = await buckets(db)
    assert after["acme:domain:example.co.uk"] == before["acme:domain:example.co.uk"]
    assert after.get("acme:account:4", 0) <= clock.now().timestamp()
    assert after.get("acme:domain:fresh.example", 0) <= clock.now().timestamp()
    # The week-long window: a step is 7 days / 3.
    assert refusal.retry_after == 7 * 86400 // 3


async def test_buckets_survive_a_new_process_and_are_shared(db_url: str, db: Database) -> None:
    """A second Database/RateLimiter on the same store (a restart, or another process) sees the
    same buckets; concurrent spenders from both never pass more than the limit in total."""
    clock = FrozenClock(START)
    first = RateLimiter(LIMITS, clock, db)
    for _ in range(2):
        assert await spend(db, first.new_account("192.0.2.7")) is None
    other_db = Database(db_url)
    try:
        second = RateLimiter(LIMITS, clock, other_db)
        refusal = await spend(other_db, second.new_account("192.0.2.7"))
        assert refusal is not None and refusal.charge.key == "acme:ip:192.0.2.7"

        results = await asyncio.gather(
            *(spend(d, r.new_order(9, [dns("race.example")])) for d, r in [(db, first), (other_db, second)] * 5)
        )
        assert sum(r is None for r in results) == 3  # orders_per_identifier = 3
    finally:
        await other_db.close()


async def test_sweep_drops_only_full_buckets(db: Database) -> None:
    clock = FrozenClock(START)
    limiter = RateLimiter(LIMITS, clock, db)
    assert await spend(db, limiter.new_order(1, [dns("a.example")])) is None
    clock.advance(dt.timedelta(hours=2))  # the account bucket is full again; the week-long one is not
    await limiter._sweep()
    assert set(await buckets(db)) == {"acme:domain:a.example"}


def test_keys() -> None:
    assert registered_domain(dns("www.example.co.uk")) == "example.co.uk"
    assert registered_domain(dns("A.B.Example.COM.")) == "example.com"
    assert registered_domain(dns("host.corp.internal")) == "corp.internal"
    assert registered_domain(Identifier("ip", "192.0.2.1")) == "192.0.2.1"
    assert address_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert address_key("192.0.2.9") == "192.0.2.9"


async def test_zero_switches_a_limit_off(db: Database) -> None:
    limiter = RateLimiter(RateLimits(orders_per_account=0, orders_per_identifier=0), FrozenClock(START), db)
    assert limiter.new_order(1, [dns("a.example")]).items == ()
    assert await spend(db, limiter.new_order(1, [dns("a.example")])) is None
    assert await buckets(db) == {}
