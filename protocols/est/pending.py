"""Enrolments held for an operator's approval (RFC 7030 §4.2.3: 202 + Retry-After).

EST has no transaction id: a client retries by posting the same CSR again. This table maps
(profile, SHA-256 of the CSR's DER) to the core's pending request, so a retry polls that request
(and gets the certificate once `tetra requests approve ID` issued it) instead of creating a
second one (EST-11). Only the client that posted it may poll it: another client posting the same
CSR under the same profile is refused (403).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from sqlalchemy import Row, String, UniqueConstraint, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from ca.state_store import Base, Id, StateDatabase, Tx, UTCDateTime, read_record, table_of


class EstPendingRow(Base):
    __tablename__ = "est_pending"
    __table_args__ = (UniqueConstraint("profile", "csr_sha256", name="uq_est_pending_csr"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    profile: Mapped[str] = mapped_column(String(64))
    csr_sha256: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[int] = mapped_column(Id)
    requester: Mapped[str] = mapped_column(String(255))  # who posted it: only they poll it
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


est_pending = table_of(EstPendingRow)


def csr_digest(csr_der: bytes) -> str:
    return hashlib.sha256(csr_der).hexdigest()


def _held(row: Row[Any]) -> tuple[int, str]:
    return int(row._mapping["request_id"]), str(row._mapping["requester"])


class PendingStore:
    def __init__(self, db: StateDatabase) -> None:
        self.db = db

    async def request_for(self, profile: str, digest: str) -> tuple[int, str] | None:
        """The core's request id this CSR is already waiting as, and who posted it, if any."""
        query = select(est_pending.c.request_id, est_pending.c.requester).where(
            est_pending.c.profile == profile, est_pending.c.csr_sha256 == digest
        )
        return await read_record(self.db, query, _held)

    async def remember(self, profile: str, digest: str, request_id: int, requester: str, now: dt.datetime) -> None:
        """Record a held request; a concurrent twin that recorded it first wins (same request id:
        the core found the pending request by the same transaction id)."""

        def w(tx: Tx) -> None:
            found = tx.conn.execute(
                select(est_pending.c.id).where(est_pending.c.profile == profile, est_pending.c.csr_sha256 == digest)
            ).first()
            if found is None:
                tx.conn.execute(
                    insert(est_pending).values(
                        profile=profile,
                        csr_sha256=digest,
                        request_id=request_id,
                        requester=requester[:255],
                        created_at=now,
                    )
                )

        await self.db.write(w)
