"""ACME accounts (RFC 8555 §7.3): one row per account key, created, changed and deactivated here."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from ca.state_store import AuditEvent, Connection, StateDatabase, Tx, first_record, read_record, record_from_row
from protocols.acme.ratelimit import NO_CHARGES, Charges, Refusal
from protocols.acme.records import Account
from protocols.acme.store.tables import accounts_t, authzs_t

# Built once: every account-signed request reads its account (in the nonce's transaction,
# store/nonces.py), and building a statement per call costs more than SQLite takes to run it.
_ACCOUNT_BY_ID = select(accounts_t).where(accounts_t.c.id == bindparam("account_id"))


def account_from_row(row: Row[Any]) -> Account:
    return record_from_row(Account, row, contact=lambda text: tuple(json.loads(text or "[]")), tos_agreed=bool)


def read_account(conn: Connection, account_id: int) -> Account | None:
    """The account, inside a transaction some other store opened (the nonce's, for one round trip)."""
    return first_record(conn, _ACCOUNT_BY_ID, account_from_row, {"account_id": account_id})


class AccountStore:
    """Accounts; every method is one read or one transaction."""

    def __init__(self, db: StateDatabase) -> None:
        self.db = db

    async def get(self, account_id: int) -> Account | None:
        return await read_record(self.db, _ACCOUNT_BY_ID, account_from_row, {"account_id": account_id})

    async def by_thumbprint(self, thumbprint: str) -> Account | None:
        return await read_record(
            self.db, select(accounts_t).where(accounts_t.c.thumbprint == thumbprint), account_from_row
        )

    async def create(self, values: dict[str, Any], charges: Charges = NO_CHARGES) -> tuple[Account, bool]:
        """Insert, or return the account that already has this key (created=False); the rate-limit
        `charges` are spent in the same transaction (ACME-25)."""

        def w(tx: Tx) -> Account | Refusal:
            refusal = charges.spend(tx.conn)
            if refusal is not None:
                return refusal
            new_id = tx.conn.execute(insert(accounts_t).values(**values).returning(accounts_t.c.id)).scalar_one()
            tx.audit(
                AuditEvent(
                    f"acme:{new_id}",
                    "acme.account.created",
                    f"acme/account/{new_id}",
                    {"thumbprint": values["thumbprint"], "eab": values.get("eab_key_id")},
                )
            )
            row = tx.conn.execute(select(accounts_t).where(accounts_t.c.id == new_id)).one()
            return account_from_row(row)

        try:
            created = await self.db.write(w)
        except IntegrityError:
            existing = await self.by_thumbprint(str(values["thumbprint"]))
            if existing is None:
                raise
            return existing, False
        if isinstance(created, Refusal):
            raise created.problem()
        return created, True

    async def update(self, account_id: int, values: dict[str, Any], action: str) -> Account | None:
        """Change contact/status/key; None if another account already has the new key."""

        def w(tx: Tx) -> Account:
            tx.conn.execute(update(accounts_t).where(accounts_t.c.id == account_id).values(**values))
            detail = {k: v for k, v in values.items() if k != "jwk"}
            tx.audit(AuditEvent(f"acme:{account_id}", action, f"acme/account/{account_id}", detail))
            if values.get("status") == "deactivated":
                # RFC 8555 §7.3.6: the account's pending authorizations end with it.
                tx.conn.execute(
                    update(authzs_t)
                    .where(authzs_t.c.account_id == account_id, authzs_t.c.status == "pending")
                    .values(status="deactivated")
                )
            return account_from_row(tx.conn.execute(select(accounts_t).where(accounts_t.c.id == account_id)).one())

        try:
            return await self.db.write(w)
        except IntegrityError:
            return None


__all__ = ["AccountStore", "account_from_row", "read_account"]
