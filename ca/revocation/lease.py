"""Leader election through the `leases` table: whoever holds an unexpired lease runs the
jobs that must run once (CRL regeneration, OCSP refresh), whatever the number of processes."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ca.store.db import Database, Tx
from ca.store.tables import leases


async def acquire(db: Database, name: str, holder: str, ttl: dt.timedelta) -> bool:
    """Take or renew the lease; False while another holder's lease runs."""
    now = db.clock.now()

    def take(tx: Tx) -> bool:
        row = tx.conn.execute(
            select(leases.c.holder, leases.c.expires_at).where(leases.c.name == name).with_for_update()
        ).first()
        if row is None:
            tx.conn.execute(insert(leases).values(name=name, holder=holder, expires_at=now + ttl))
            return True
        if row.holder != holder and row.expires_at > now:
            return False
        tx.conn.execute(update(leases).where(leases.c.name == name).values(holder=holder, expires_at=now + ttl))
        return True

    try:
        return await db.write(take)
    except IntegrityError:
        return False  # another process inserted the first lease at the same moment


async def release(db: Database, name: str, holder: str) -> None:
    await db.write(lambda tx: tx.conn.execute(delete(leases).where(leases.c.name == name, leases.c.holder == holder)))
