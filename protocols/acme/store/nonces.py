"""Anti-replay nonces (RFC 8555 §6.5) in the shared table: added in batches, redeemed by the one
request whose DELETE removes the row (SEC-02), swept so the table stays bounded (LOAD-04).

The pool that hands nonces out is protocols/acme/nonces.py; this is only its SQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import bindparam, delete, func, insert, select

from ca.state_store import Connection, StateDatabase, Tx
from protocols.acme.records import Account
from protocols.acme.store.accounts import read_account
from protocols.acme.store.tables import nonces_t

L = TypeVar("L")
Loader = Callable[[Connection, Account], Any]
"""A read inside the nonce's transaction (NonceStore.redeem_for): the loaders of
store/orders.py and store/authorizations.py."""

# Every account-signed request runs it: built once (a statement per call costs more than SQLite takes to run it).
_REDEEM_NONCE = delete(nonces_t).where(
    nonces_t.c.value == bindparam("nonce_value"), nonces_t.c.expires_at > bindparam("nonce_now")
)


class NonceStore:
    """Nonce rows; every method is one transaction, grouped with others where it is on the hot path."""

    def __init__(self, db: StateDatabase) -> None:
        self.db = db

    async def add(self, values: Sequence[str], expires_at: dt.datetime) -> None:
        def w(tx: Tx) -> None:
            tx.conn.execute(insert(nonces_t), [{"value": v, "expires_at": expires_at} for v in values])

        await self.db.write_grouped(w)

    async def redeem(self, value: str, now: dt.datetime) -> bool:
        """Delete the row; exactly one request anywhere can see rowcount 1 (SEC-02)."""

        def w(tx: Tx) -> bool:
            result = tx.conn.execute(delete(nonces_t).where(nonces_t.c.value == value, nonces_t.c.expires_at > now))
            return bool(result.rowcount == 1)

        return await self.db.write_grouped(w)

    async def redeem_for(
        self,
        value: str,
        now: dt.datetime,
        account_id: int,
        load: Callable[[Connection, Account], L] | None = None,
    ) -> tuple[bool, Account | None, L | None]:
        """Redeem a nonce and read the signing account in the same (grouped) transaction: one
        round trip per request, and the account's status is as fresh as the nonce check.
        `load`, if given, reads what the request is about in that same transaction (only when the
        nonce was good and the account exists), so a POST-as-GET costs one database round trip."""

        def w(tx: Tx) -> tuple[bool, Account | None, L | None]:
            conn = tx.conn
            result = conn.execute(_REDEEM_NONCE, {"nonce_value": value, "nonce_now": now})
            redeemed = bool(result.rowcount == 1)
            account = read_account(conn, account_id)
            loaded = load(conn, account) if (load is not None and redeemed and account is not None) else None
            return redeemed, account, loaded

        return await self.db.write_grouped(w)

    async def sweep(self, now: dt.datetime, cap: int) -> int:
        """Drop expired nonces, then the oldest beyond the cap (LOAD-04: bounded table)."""

        def w(tx: Tx) -> int:
            removed = tx.conn.execute(delete(nonces_t).where(nonces_t.c.expires_at <= now)).rowcount
            count = tx.conn.execute(select(func.count()).select_from(nonces_t)).scalar_one()
            if count > cap:
                cutoff = tx.conn.execute(
                    select(nonces_t.c.expires_at).order_by(nonces_t.c.expires_at).offset(count - cap).limit(1)
                ).scalar_one()
                removed += tx.conn.execute(delete(nonces_t).where(nonces_t.c.expires_at < cutoff)).rowcount
            return int(removed)

        return await self.db.write(w)


__all__ = ["Loader", "NonceStore"]
