"""Renew-now requests for ACME Renewal Information (RFC 9773): an operator (`tetra acme renew-now`)
or an issuer rotation asks every certificate of a serial, profile or issuing CA to renew at once;
renewalInfo then suggests a window already under way for certificates issued before the request."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, insert, or_, select

from ca.state_store import AuditEvent, Connection, StateDatabase, Tx
from protocols.acme.store.tables import renew_now_t


class RenewNowStore:
    def __init__(self, db: StateDatabase) -> None:
        self.db = db

    async def add(self, scope: str, value: str, actor: str, now: dt.datetime) -> None:
        """Record (and audit) a request; ``scope`` is "serial", "profile" or "issuer"."""

        def w(tx: Tx) -> None:
            tx.conn.execute(insert(renew_now_t).values(scope=scope, value=value, created_at=now, actor=actor))
            tx.audit(AuditEvent(actor, "acme.renew_now", f"{scope}/{value}"))

        await self.db.write(w)

    async def requested_since(self, serial_hex: str, profile: str, issuer: str, after: dt.datetime) -> bool:
        """Whether a request for this certificate's serial, profile or issuer was made at or after ``after``."""

        def q(conn: Connection) -> bool:
            row = conn.execute(
                select(renew_now_t.c.id)
                .where(
                    renew_now_t.c.created_at >= after,
                    or_(
                        and_(renew_now_t.c.scope == "serial", renew_now_t.c.value == serial_hex),
                        and_(renew_now_t.c.scope == "profile", renew_now_t.c.value == profile),
                        and_(renew_now_t.c.scope == "issuer", renew_now_t.c.value == issuer),
                    ),
                )
                .limit(1)
            ).first()
            return row is not None

        return await self.db.read(q)


__all__ = ["RenewNowStore"]
