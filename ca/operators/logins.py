"""`Logins`: a dashboard login by name and password, throttled in the database (OPS-06).

The failures are rows of `login_failures`, so every server process sharing the database counts
the same ones. Two locks, each for `LOCK` after the failure that reached its limit:

- a user with `USER_LIMIT` failures within `WINDOW` is locked: even the right password is
  refused, so guessing one user's password from many addresses gets 5 tries per 15 minutes;
- an address with `ADDRESS_LIMIT` failures within `WINDOW` is locked, so one address cannot
  try one password against many names.

While locked, attempts are refused before the password is checked and are not counted, so a
lock lasts exactly `LOCK`. The failure that starts a lock writes one audit event
("user.locked" or "address.locked"); a successful login clears that user's failures from that
address. A wrong name and a wrong password are one refusal (`LoginRefused`), and an unknown
name costs an argon2 check too, so neither the message nor the timing tells which names exist.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from sqlalchemy import ColumnElement, delete, func, insert, select

from ca.audit import AuditEvent
from ca.clock import Clock
from ca.operators.errors import LoginRefused, LoginThrottled
from ca.operators.passwords import verify_password
from ca.operators.principal import Principal
from ca.operators.tables import NAME_MAX, login_failures
from ca.operators.users import principal_of, user_from_row, user_row
from ca.store.db import Database, Tx

WINDOW = dt.timedelta(minutes=15)
LOCK = dt.timedelta(minutes=15)
USER_LIMIT = 5
ADDRESS_LIMIT = 20
_ADDRESS_MAX = 64  # login_failures.address: an IPv6 address with its zone fits


def _locked_until(conn: Any, key: ColumnElement[bool], limit: int, now: dt.datetime) -> dt.datetime | None:
    """When the lock on ``key``'s failures ends, if one is in force: a lock starts at a failure
    that had `limit` failures within `WINDOW` up to it, and no failure is counted while locked,
    so the newest failure is the one that started any lock still in force."""
    newest = conn.execute(select(func.max(login_failures.c.at)).where(key, login_failures.c.at > now - LOCK)).scalar()
    if newest is None:
        return None
    count = conn.execute(
        select(func.count()).where(key, login_failures.c.at > newest - WINDOW, login_failures.c.at <= newest)
    ).scalar_one()
    return newest + LOCK if count >= limit else None


class Logins:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def login(self, name: str, password: str, address: str) -> Principal:
        """The principal of ``name`` if ``password`` is its own and neither the user nor the
        address is locked; LoginRefused or LoginThrottled(retry_after_seconds) otherwise."""
        name, address = name[:NAME_MAX], address[:_ADDRESS_MAX]
        by_user = login_failures.c.user_name == name
        by_address = login_failures.c.address == address
        now = self.clock.now()

        def look(conn: Any) -> tuple[Any, list[dt.datetime]]:
            locks = [_locked_until(conn, by_user, USER_LIMIT, now), _locked_until(conn, by_address, ADDRESS_LIMIT, now)]
            return user_row(conn, name), [until for until in locks if until is not None]

        row, locks = await self.db.read(look)
        if locks:
            raise LoginThrottled(max(1, math.ceil((max(locks) - now).total_seconds())))
        if not await verify_password(password, None if row is None else row.password_hash):
            await self._failed(name, address, now)
            raise LoginRefused()
        user = user_from_row(row)
        if user.refusal(now) is not None:
            raise LoginRefused()

        def succeeded(tx: Tx) -> None:
            tx.conn.execute(delete(login_failures).where(by_user, by_address))

        await self.db.write(succeeded)
        return principal_of(user)

    async def _failed(self, name: str, address: str, now: dt.datetime) -> None:
        """Count one failure; the one that reaches a limit starts a lock and audits it."""
        by_user = login_failures.c.user_name == name
        by_address = login_failures.c.address == address

        def w(tx: Tx) -> None:
            tx.conn.execute(delete(login_failures).where(by_user, login_failures.c.at <= now - WINDOW))
            tx.conn.execute(insert(login_failures).values(user_name=name, address=address, at=now))
            if _locked_until(tx.conn, by_user, USER_LIMIT, now) is not None:
                details = {"failures": USER_LIMIT, "minutes": LOCK.seconds // 60, "address": address}
                tx.audit(AuditEvent("system", "user.locked", f"user/{name}", details))
            if _locked_until(tx.conn, by_address, ADDRESS_LIMIT, now) is not None:
                details = {"failures": ADDRESS_LIMIT, "minutes": LOCK.seconds // 60}
                tx.audit(AuditEvent("system", "address.locked", f"address/{address}", details))

        await self.db.write(w)
