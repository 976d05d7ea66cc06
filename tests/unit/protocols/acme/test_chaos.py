"""ACME-27 chaos mode: how many nonces are refused, never twice in a row, validation delays,
the [acme.chaos] keys, and the loud start-up warning."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import time
from collections.abc import AsyncIterator

import pytest

from ca.clock import FrozenClock
from ca.errors import ConfigError
from ca.store.db import Database
from ca.tomlread import Table
from protocols.acme.chaos import NonceChaos, announce, delay_validation
from protocols.acme.config import ChaosConfig, parse_config
from protocols.acme.nonces import NonceService
from protocols.acme.store.nonces import NonceStore


@pytest.mark.parametrize("fraction", [0.05, 0.3])
def test_refused_fraction_and_never_two_close_together(fraction: float) -> None:
    chaos = NonceChaos(fraction)
    draws = [chaos.refuse_next() for _ in range(60_000)]
    assert abs(sum(draws) / len(draws) - fraction) < 0.01
    refused_at = [i for i, refused in enumerate(draws) if refused]
    assert min(b - a for a, b in itertools.pairwise(refused_at)) >= 3


def test_off_by_default() -> None:
    assert not ChaosConfig().enabled
    assert not any(NonceChaos(ChaosConfig().reject_nonce_fraction).refuse_next() for _ in range(10_000))


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[NonceStore]:
    db = Database(db_url)
    try:
        yield NonceStore(db)
    finally:
        await db.close()


async def test_refused_nonces_fail_to_redeem_and_honest_ones_work(store: NonceStore) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    nonces = NonceService(store, clock, lifetime=3600, pool=16, cap=10_000, chaos_reject=0.3)
    outcomes = [await nonces.redeem(await nonces.new()) for _ in range(90)]
    refused = [i for i, ok in enumerate(outcomes) if not ok]
    assert 10 <= len(refused) <= 50
    assert all(b - a >= 3 for a, b in itertools.pairwise(refused))
    honest = NonceService(store, clock, lifetime=3600, pool=16, cap=10_000)
    assert all([await honest.redeem(await honest.new()) for _ in range(40)])
    await nonces.close()
    await honest.close()


async def test_validation_delay_is_random_and_bounded() -> None:
    elapsed = []
    for _ in range(15):
        started = time.monotonic()
        await delay_validation(ChaosConfig(validation_delay_max_ms=60))
        elapsed.append(time.monotonic() - started)
    assert max(elapsed) < 0.5 and max(elapsed) - min(elapsed) > 0.005
    started = time.monotonic()
    await delay_validation(ChaosConfig())
    assert time.monotonic() - started < 0.005


def _parse(chaos: dict[str, object]) -> ChaosConfig:
    return parse_config(Table({"chaos": chaos}, "t.toml", "acme.")).chaos


def test_chaos_keys_are_checked() -> None:
    assert _parse({"reject_nonce_fraction": 0.05, "validation_delay_max_ms": 2000}) == ChaosConfig(0.05, 2000)
    cases: list[dict[str, object]] = [
        {"reject_nonce_fraction": 0.5},
        {"validation_delay_max_ms": -1},
        {"reject_nonce": 0.1},
    ]
    for bad in cases:
        with pytest.raises(ConfigError):
            _parse(bad)


def test_chaos_mode_is_announced_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="tetra.acme.chaos"):
        announce(ChaosConfig())
        assert not caplog.records
        announce(ChaosConfig(reject_nonce_fraction=0.05))
    [record] = caplog.records
    assert record.levelno == logging.WARNING and "CHAOS MODE IS ON" in record.getMessage()
