"""The per-source brake on refused requests (LOAD-05), on its own: GCRA arithmetic, sources kept
apart (an IPv6 /64 is one source), the table bounded, and 0 switching it off."""

from __future__ import annotations

import datetime as dt

from ca.clock import FrozenClock
from protocols.acme.refusals import RefusalLimiter


def test_burst_then_block_then_drain() -> None:
    clock = FrozenClock(dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    brake = RefusalLimiter(60, clock)  # one a second, a burst of 60
    assert [brake.refused("192.0.2.1") for _ in range(60)] == [False] * 60
    assert brake.retry_after("192.0.2.1") is None
    assert brake.refused("192.0.2.1") is True  # the 61st starts the block
    assert brake.retry_after("192.0.2.1") == 1
    assert brake.retry_after("192.0.2.2") is None  # another address is not touched
    clock.advance(dt.timedelta(seconds=1))
    assert brake.retry_after("192.0.2.1") is None


def test_an_ipv6_64_is_one_source() -> None:
    clock = FrozenClock(dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    brake = RefusalLimiter(10, clock)
    for i in range(11):
        brake.refused(f"2001:db8:1:2::{i + 1:x}")  # eleven addresses of one /64
    assert brake.retry_after("2001:db8:1:2::ffff") is not None
    assert brake.retry_after("2001:db8:1:3::1") is None


def test_the_table_forgets_the_least_recently_refused_first() -> None:
    clock = FrozenClock(dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    brake = RefusalLimiter(1, clock, max_sources=100)
    for _ in range(3):
        brake.refused("198.51.100.7")
    assert brake.retry_after("198.51.100.7") is not None
    for i in range(100):
        brake.refused(f"203.0.113.{i}")
    assert len(brake._tat) == 100
    assert brake.retry_after("198.51.100.7") is None  # forgotten: the flood of others pushed it out


def test_zero_switches_it_off() -> None:
    brake = RefusalLimiter(0, FrozenClock(dt.datetime(2026, 6, 1, tzinfo=dt.UTC)))
    assert not any(brake.refused("192.0.2.1") for _ in range(10_000))
    assert brake.retry_after("192.0.2.1") is None
