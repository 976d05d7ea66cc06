"""LOAD-04, ACME-25: the background sweep that keeps the nonce and rate-limit tables bounded starts
every so many requests, never twice at once, and survives a failed pass."""

from __future__ import annotations

import asyncio
import logging

import pytest

from protocols.acme.row_sweep import RowSweep


async def test_one_sweep_at_a_time_and_a_failure_does_not_stop_the_next(caplog: pytest.LogCaptureFixture) -> None:
    gate = asyncio.Event()
    passes: list[str] = []

    async def remove() -> int:
        passes.append("started")
        await gate.wait()
        if len(passes) == 1:
            raise OSError("database is locked")
        return 7

    sweep = RowSweep("rows", remove, 3, logging.getLogger("tetra.test.sweep"))
    caplog.set_level(logging.DEBUG, logger="tetra.test.sweep")
    for _ in range(2):
        sweep.count()
    assert sweep.running is None  # not yet the third request
    sweep.count()
    first = sweep.running
    assert first is not None
    for _ in range(3):
        sweep.count()  # the sixth request falls while the first pass still runs: no second pass
    assert sweep.running is first
    gate.set()
    await first
    assert sweep.running is None and passes == ["started"]
    assert "sweeping rows failed: database is locked" in caplog.text

    for _ in range(3):
        sweep.count()
    assert sweep.running is not None
    await sweep.running
    assert passes == ["started", "started"]
    assert "swept 7 rows" in caplog.text
