"""The outbox store on SQLite and PostgreSQL: a key is queued once, a row is claimed by one
sender at a time even when two stores (two connection pools, as two processes have) claim at the
same moment (CLM-02), and the backoff after failures (CLM-03)."""

from __future__ import annotations

import asyncio
import datetime as dt

from ca.notices.outbox import Message, OutboxStore, retry_delay
from server.config import ServerConfig
from server.wiring import build_ca

NOW = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


def _message(n: int) -> Message:
    return Message(f"test:{n}:owner:email:x@example.com", "test", "owner", "email", "x@example.com", "s", "b")


def test_backoff_doubles_from_30_seconds_up_to_an_hour() -> None:
    """CLM-03: 30 s, 60 s, 120 s ... never more than an hour."""
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert retry_delay(8) == retry_delay(20) == dt.timedelta(hours=1)


async def test_queue_once_and_claims_never_overlap(config: ServerConfig) -> None:
    """CLM-02: a key queued twice is one row; two stores claiming at once, over their own
    connection pools, never get the same row, and between them get every row."""
    one, two = await build_ca(config, open_signers=False), await build_ca(config, open_signers=False)
    try:
        first, second = OutboxStore(one.db), OutboxStore(two.db)
        assert await first.queue([_message(n) for n in range(60)], NOW) == 60
        assert await second.queue([_message(n) for n in range(70)], NOW) == 10
        claimed: list[list[Message]] = []
        for _ in range(10):
            a, b = await asyncio.gather(first.claim_due("a", NOW, 7), second.claim_due("b", NOW, 7))
            claimed += [a, b]
        ids = [m.id for batch in claimed for m in batch]
        assert len(ids) == len(set(ids)) == 70
        assert await first.claim_due("c", NOW + dt.timedelta(minutes=1), 100) == []  # claims still hold
        status = await first.status()
        assert (status.queued, status.delivered, status.failing, status.given_up) == (70, 0, 0, 0)
    finally:
        await one.close()
        await two.close()
