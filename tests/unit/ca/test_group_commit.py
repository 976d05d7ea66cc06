"""Group commit isolation (ST-21): one writer's bad value fails that writer alone, as a client
error; its neighbours in the shared transaction commit. An outage still fails them all as one.

Runs on SQLite and PostgreSQL, each through worker threads and through the asyncio drivers,
since each of the four drivers words a refused value its own way.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, insert, select, text

from ca.errors import RejectedValue, StoreUnavailable
from ca.store.db import Database, Tx
from ca.store.driver_errors import rejects_value

metadata = MetaData()
probe = Table(
    "group_commit_probe",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("label", String(16), nullable=False),
    Column("number", BigInteger),
)
CREATE = "CREATE TABLE IF NOT EXISTS group_commit_probe (id {pk}, label VARCHAR(16) NOT NULL, number BIGINT)"

# Values no store can hold in these columns, whatever the driver: an object, an integer past
# 64 bits, a lone surrogate (not UTF-8). PostgreSQL also refuses a string longer than its
# column and a NUL, both of which SQLite stores.
POISON: list[dict[str, Any]] = [
    {"label": {"owner": "secret-1"}},
    {"label": "ok", "number": 10**40},
    {"label": "\ud800"},
]
POSTGRES_ONLY_POISON: list[dict[str, Any]] = [
    {"label": "x" * 17},  # longer than VARCHAR(16): SQLite does not enforce lengths
    {"label": "secret\x00"},
]


@pytest.fixture
async def db(db_url: str, db_mode: str) -> AsyncIterator[Database]:
    database = Database(db_url, mode=db_mode, max_batch=64)
    pk = "SERIAL PRIMARY KEY" if database.backend == "postgresql" else "INTEGER PRIMARY KEY"
    statement = text(CREATE.format(pk=pk))
    await database.write(lambda tx: tx.conn.execute(statement))
    try:
        yield database
    finally:
        await database.close()


def writer(values: dict[str, Any]) -> Callable[[Tx], str]:
    def fn(tx: Tx) -> str:
        tx.execute_many(insert(probe), {"number": None, **values})
        return str(values["label"])

    return fn


async def stored_labels(db: Database) -> list[str]:
    return await db.read(lambda conn: sorted(str(r.label) for r in conn.execute(select(probe))))


async def run_batch(db: Database, poison: list[dict[str, Any]], total: int = 45) -> int:
    """`total` concurrent grouped writers, the poisoned spread among them; checks each outcome
    and the stored rows, and returns how many transactions were run."""
    tag = secrets.token_hex(3)
    legit = [{"label": f"{tag}-{i}"} for i in range(total - len(poison))]
    order = legit[:]
    for index, bad in enumerate(poison):  # spread over the batch, not bunched at one end
        order.insert(index * 7 + 3, bad)
    transactions = 0
    write = db.write

    async def counted(fn: Callable[[Tx], Any]) -> Any:
        nonlocal transactions
        transactions += 1
        return await write(fn)

    db.write = counted  # type: ignore[method-assign]
    try:
        outcomes = await asyncio.gather(*(db.write_grouped(writer(v)) for v in order), return_exceptions=True)
    finally:
        db.write = write  # type: ignore[method-assign]
    for values, outcome in zip(order, outcomes, strict=True):
        if values in poison:
            assert isinstance(outcome, RejectedValue), (values, outcome)
            assert outcome.reason.value == "malformed"
            assert "secret" not in outcome.public_detail()
        else:
            assert outcome == values["label"], (values, outcome)
    assert sorted(v["label"] for v in legit) == [label for label in await stored_labels(db) if label.startswith(tag)]
    return transactions


def halving_bound(total: int, guilty: int) -> int:
    """Transactions for `total` writers with `guilty` bad ones: the first writer alone, then the
    rest as one batch, each guilty writer failing at most one batch per level of halving."""
    return 2 + 2 * guilty * math.ceil(math.log2(total))


async def test_a_bad_value_fails_its_writer_alone(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    """ST-21: 45 writers share group commits; the poisoned ones (an object, an int past
    64 bits, a lone surrogate, and on PostgreSQL a string too long and a NUL) each get
    RejectedValue (a 4xx, never StoreUnavailable) whose detail quotes nothing; every legitimate
    writer's row is stored. SEC-05: the refused values reach no log line (asyncpg quotes them
    in its message)."""
    caplog.set_level(logging.DEBUG, logger="tetra.store")
    poison = POISON + (POSTGRES_ONLY_POISON if db.backend == "postgresql" else [])
    assert await run_batch(db, poison) <= halving_bound(45, len(poison))
    assert "refused a value" in caplog.text
    assert "secret" not in caplog.text


async def test_one_bad_value_costs_a_few_transactions_not_one_per_writer(db: Database) -> None:
    """ST-21: with one poisoned writer among 45, the failed batch is halved: about 2·log2(45)
    more transactions, not 44 (one per innocent writer)."""
    transactions = await run_batch(db, POISON[:1])
    assert transactions <= halving_bound(45, 1) < 45, transactions


async def test_a_writer_that_raises_fails_alone(db: Database) -> None:
    """ST-21: a writer whose own code raises (a bug, not a value) fails with its own exception;
    the others in its batch still commit."""

    def broken(tx: Tx) -> str:
        raise KeyError("bug")

    tag = secrets.token_hex(3)
    writers: list[Callable[[Tx], Any]] = [writer({"label": f"{tag}-{i}"}) for i in range(10)]
    writers.insert(4, broken)
    outcomes = await asyncio.gather(*(db.write_grouped(w) for w in writers), return_exceptions=True)
    assert isinstance(outcomes[4], KeyError)
    assert len(await stored_labels(db)) == 10


@pytest.mark.parametrize("url", ["sqlite:////nonexistent-directory/tetra.db", "postgresql://postgres@127.0.0.1:1/x"])
async def test_an_outage_fails_the_whole_batch_at_once(url: str, db_mode: str) -> None:
    """ST-21 (and ST-04): when the store cannot be reached every writer of the batch gets
    StoreUnavailable ("try later") from one attempt, not one retry per writer."""
    database = Database(url, mode=db_mode, timeout=5)
    attempts = 0
    write = database.write

    async def counted(fn: Callable[[Tx], Any]) -> Any:
        nonlocal attempts
        attempts += 1
        return await write(fn)

    database.write = counted  # type: ignore[method-assign]
    try:
        outcomes = await asyncio.gather(
            *(database.write_grouped(writer({"label": str(i)})) for i in range(20)), return_exceptions=True
        )
    finally:
        await database.close()
        # aiosqlite stops a connection that failed to open from its own thread, unawaited: let it
        # finish while this test's event loop still runs.
        await asyncio.sleep(0.2)
    assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
    assert attempts <= 2  # the first writer alone, then the rest of the queue as one batch


def test_what_counts_as_a_refused_value() -> None:
    """ST-21: the classification the committer relies on; an outage is never a refused value."""
    assert rejects_value(OverflowError("Python int too large to convert to SQLite INTEGER"))
    assert rejects_value(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"))
    assert not rejects_value(TimeoutError())
    assert not rejects_value(ConnectionRefusedError())
