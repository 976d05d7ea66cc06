"""ACME orders (RFC 8555 §7.4): created with their authorizations in one transaction, then moved
only by compare-and-set on their status (§7.1.6), so concurrent requests and processes agree."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Row

from ca.enrollment import Identifier
from ca.interface import ResultWrite
from ca.state_store import Connection, StateDatabase, Tx, certificates, first_record, read_record, record_from_row
from protocols.acme.ratelimit import NO_CHARGES, Charges, Refusal
from protocols.acme.records import Account, Authz, NewAuthz, Order
from protocols.acme.store.authorizations import insert_authz, json_or_none, load_authzs, reusable_authz
from protocols.acme.store.tables import orders_t, status_move

# Statements every request runs, built once: building a statement and its cache key per call
# costs more than SQLite takes to run it.
_ORDER_BY_ID = select(orders_t).where(orders_t.c.id == bindparam("order_id"))
_ORDER_BY_CERT = select(orders_t).where(orders_t.c.certificate_id == bindparam("certificate_id"))
_CERT_BY_ID = select(certificates).where(certificates.c.id == bindparam("certificate_id"))
_ORDER_ISSUED = status_move(orders_t, "order_id", "processing", "valid", "certificate_id")
_SET_ORDER: dict[tuple[str, ...], Any] = {}
_ORDER_COLUMNS = (
    "account_id",
    "profile",
    "status",
    "identifiers",
    "authz_ids",
    "not_before",
    "not_after",
    "replaces",
    "replaces_cert_id",
    "created_at",
    "expires_at",
)
_INSERT_ORDER = insert(orders_t).values({c: bindparam(c) for c in _ORDER_COLUMNS}).returning(orders_t.c.id)


def _set_order_statement(columns: tuple[str, ...]) -> Any:
    """The order compare-and-set for one set of changed columns, built once per set."""
    statement = _SET_ORDER.get(columns)
    if statement is None:
        statement = (
            update(orders_t)
            .where(
                orders_t.c.id == bindparam("order_id"),
                orders_t.c.status.in_(bindparam("from_statuses", expanding=True)),
            )
            .values({c: bindparam(f"v_{c}") for c in columns})
        )
        _SET_ORDER[columns] = statement
    return statement


def order_from_row(row: Row[Any]) -> Order:
    return record_from_row(
        Order,
        row,
        identifiers=lambda text: tuple(Identifier.parse(s) for s in json.loads(text)),
        authz_ids=lambda text: tuple(int(i) for i in json.loads(text)),
        error=json_or_none,
    )


def _order_with_authzs(conn: Connection, order_id: int) -> tuple[Order, list[Authz]] | None:
    order = first_record(conn, _ORDER_BY_ID, order_from_row, {"order_id": order_id})
    return None if order is None else (order, load_authzs(conn, order.authz_ids))


class OrderStore:
    """Orders; every method is one read or one transaction."""

    def __init__(self, db: StateDatabase) -> None:
        self.db = db

    async def create(
        self,
        *,
        account_id: int,
        profile: str,
        identifiers: Sequence[Identifier],
        new_authzs: Sequence[NewAuthz],
        reuse_after: dt.datetime | None,
        now: dt.datetime,
        order_expires: dt.datetime,
        authz_expires: dt.datetime,
        not_before: dt.datetime | None,
        not_after: dt.datetime | None,
        replaces: str | None,
        replaces_cert_id: int | None,
        charges: Charges = NO_CHARGES,
    ) -> Order:
        """One transaction: spend the rate-limit charges (ACME-25), reuse the account's valid
        authorizations where allowed (ACME-24), create the rest with their challenges, then the order."""

        def w(tx: Tx) -> Order | Refusal:
            conn = tx.conn
            refusal = charges.spend(conn)
            if refusal is not None:
                return refusal  # not raised: that would roll back the writers sharing this commit
            authz_ids: list[int] = []
            statuses: list[str] = []
            expires = order_expires  # never past an authorization it relies on (RFC 8555 §7.1.3)
            for spec in new_authzs:
                reused = None if reuse_after is None else reusable_authz(conn, account_id, spec, reuse_after, now)
                if reused is not None:
                    authz_ids.append(reused[0])
                    statuses.append("valid")
                    expires = min(expires, reused[1])
                    continue
                authz_ids.append(insert_authz(conn, account_id, spec, now, authz_expires))
                statuses.append("pending")
            status = "ready" if statuses and all(s == "valid" for s in statuses) else "pending"
            values = {
                "account_id": account_id,
                "profile": profile,
                "status": status,
                "identifiers": json.dumps([str(i) for i in identifiers]),
                "authz_ids": json.dumps(authz_ids),
                "not_before": not_before,
                "not_after": not_after,
                "replaces": replaces,
                "replaces_cert_id": replaces_cert_id,
                "created_at": now,
                "expires_at": expires,
            }
            order_id = conn.execute(_INSERT_ORDER, values).scalar_one()
            return Order(
                int(order_id),
                account_id,
                profile,
                status,
                tuple(identifiers),
                tuple(authz_ids),
                not_before,
                not_after,
                replaces,
                replaces_cert_id,
                None,
                None,
                None,
                now,
                expires,
                None,
            )

        created = await self.db.write_grouped(w)
        if isinstance(created, Refusal):
            raise created.problem()
        return created

    async def get(self, order_id: int) -> Order | None:
        return await read_record(self.db, _ORDER_BY_ID, order_from_row, {"order_id": order_id})

    async def with_authzs(self, order_id: int) -> tuple[Order, list[Authz]] | None:
        return await self.db.read(lambda conn: _order_with_authzs(conn, order_id))

    async def compare_and_set(self, order_id: int, from_statuses: tuple[str, ...], values: dict[str, Any]) -> bool:
        """Compare-and-set on the order's status: the only way an order moves (§7.1.6)."""

        statement = _set_order_statement(tuple(sorted(values)))
        params = {
            **{f"v_{k}": v for k, v in values.items()},
            "order_id": order_id,
            "from_statuses": list(from_statuses),
        }

        def w(tx: Tx) -> bool:
            return bool(tx.conn.execute(statement, params).rowcount == 1)

        return await self.db.write_grouped(w)

    @staticmethod
    def on_issued(order_id: int) -> ResultWrite:
        """processing -> valid with the certificate, for ``CoreApi.enroll(on_issued=...)``: it runs
        inside the transaction that records the certificate, with no commit of its own. If the order
        has left processing meanwhile (ST-02 recovery found the certificate first), it is left alone."""

        def write(tx: Tx, certificate_id: int) -> None:
            tx.execute_many(_ORDER_ISSUED, {"order_id": order_id, "v_certificate_id": certificate_id})

        return write

    async def ids_of(self, account_id: int, limit: int = 1000) -> list[int]:
        """The account's orders that are not invalid, newest first (RFC 8555 §7.1.2.1)."""

        def q(conn: Connection) -> list[int]:
            rows = conn.execute(
                select(orders_t.c.id)
                .where(
                    orders_t.c.account_id == account_id,
                    orders_t.c.status.in_(("pending", "ready", "processing", "valid")),
                )
                .order_by(orders_t.c.id.desc())
                .limit(limit)
            )
            return [int(r.id) for r in rows]

        return await self.db.read(q)

    async def for_certificate(self, certificate_id: int) -> Order | None:
        """The order that made a certificate (who may download, revoke or replace it)."""
        return await read_record(self.db, _ORDER_BY_CERT, order_from_row, {"certificate_id": certificate_id})

    async def processing_since(self, before: dt.datetime, limit: int) -> list[tuple[Order, list[Authz]]]:
        """Orders in processing (not waiting for an operator) since before `before`: what a crash
        may have left behind (ST-02), oldest first, with their authorizations."""

        def q(conn: Connection) -> list[tuple[Order, list[Authz]]]:
            started = func.coalesce(orders_t.c.processing_at, orders_t.c.created_at)
            rows = conn.execute(
                select(orders_t)
                .where(orders_t.c.status == "processing", orders_t.c.request_id.is_(None), started < before)
                .order_by(orders_t.c.id)
                .limit(limit)
            ).all()
            return [(o, load_authzs(conn, o.authz_ids)) for o in map(order_from_row, rows)]

        return await self.db.read(q)

    async def replacements(self, cert_id: int) -> list[tuple[Order, list[Authz]]]:
        """RFC 9773 §5: the orders, not stored as invalid, that replace a certificate, with their
        authorizations (the caller applies the status rules: one may have expired or be stuck)."""

        def q(conn: Connection) -> list[tuple[Order, list[Authz]]]:
            rows = conn.execute(
                select(orders_t).where(orders_t.c.replaces_cert_id == cert_id, orders_t.c.status != "invalid").limit(10)
            ).all()
            return [(o, load_authzs(conn, o.authz_ids)) for o in map(order_from_row, rows)]

        return await self.db.read(q)

    async def issued_since(self, requester: str, since: dt.datetime) -> list[tuple[int, tuple[str, ...], bytes]]:
        """Certificates a requester got since a moment (finalize recovery after a crash, ST-01 F4)."""

        def q(conn: Connection) -> list[tuple[int, tuple[str, ...], bytes]]:
            rows = conn.execute(
                select(certificates.c.id, certificates.c.sans, certificates.c.der)
                .where(
                    certificates.c.requester == requester,
                    certificates.c.status == "issued",
                    certificates.c.created_at >= since,
                )
                .limit(1000)
            )
            return [(int(r.id), tuple(json.loads(r.sans)), bytes(r.der)) for r in rows if r.der is not None]

        return await self.db.read(q)


# -- loaders: reads that run inside the nonce-redeeming transaction (NonceStore.redeem_for) --
def load_order_with_authzs(order_id: int) -> Callable[[Connection, Account], tuple[Order, list[Authz]] | None]:
    def q(conn: Connection, _account: Account) -> tuple[Order, list[Authz]] | None:
        return _order_with_authzs(conn, order_id)

    return q


def load_certificate(certificate_id: int) -> Callable[[Connection, Account], tuple[Order | None, Row[Any] | None]]:
    """The order that made a certificate, and the certificate row if the order is this account's."""

    def q(conn: Connection, account: Account) -> tuple[Order | None, Row[Any] | None]:
        order = first_record(conn, _ORDER_BY_CERT, order_from_row, {"certificate_id": certificate_id})
        if order is None or order.account_id != account.id:
            return order, None
        return order, conn.execute(_CERT_BY_ID, {"certificate_id": certificate_id}).first()

    return q


__all__ = ["OrderStore", "load_certificate", "load_order_with_authzs", "order_from_row"]
