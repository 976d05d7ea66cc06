"""The operator plane's stores on a migrated database (SQLite and PostgreSQL, through the
shared `db_url` fixture) with a clock the test moves: no CA is built, no signer opened."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select

from ca.clock import FrozenClock
from ca.operators.plane import Operators
from ca.store.db import Database
from ca.store.tables import audit_log


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(dt.datetime.now(dt.UTC).replace(microsecond=0))


@pytest.fixture
async def db(db_url: str, clock: FrozenClock) -> AsyncIterator[Database]:
    database = Database(db_url, clock=clock)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def operators(db: Database, clock: FrozenClock) -> Operators:
    return Operators(db, clock)


AuditRows = Callable[[str], Awaitable[list[dict[str, Any]]]]


@pytest.fixture
def audit_rows(db: Database) -> AuditRows:
    """Reads the audit events whose action starts with a prefix, oldest first, details decoded."""

    async def read(prefix: str) -> list[dict[str, Any]]:
        query = select(audit_log).where(audit_log.c.action.startswith(prefix)).order_by(audit_log.c.seq)
        rows = await db.read(lambda conn: list(conn.execute(query)))
        return [{**row._mapping, "details": json.loads(row.details)} for row in rows]

    return read
