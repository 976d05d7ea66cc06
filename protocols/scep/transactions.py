"""SCEP transactions: one row per (profile, transactionID), so a re-sent request is recognised.

RFC 8894 §3.2.1.1 makes the transactionID the client's handle on one enrolment. A client that
lost the CertRep sends the same PKCSReq again, and a pending one polls with CertPoll under the
same id: the row says which certificate was issued (the same one is returned, SCEP-17), or which
core request waits for approval (SCEP-14). The row is claimed *before* issuing, inside a unique
constraint, so two concurrent twins cannot both issue: the loser finds the winner's row. The SPKI
hash of the CSR key ties the id to one key: the same id with another key is refused.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, String, UniqueConstraint, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from ca.errors import CAError, FailureReason
from ca.interface import ResultWrite
from ca.state_store import Base, Id, StateDatabase, Tx, UTCDateTime, read_record, table_of


class ScepTransactionRow(Base):
    __tablename__ = "scep_transactions"
    __table_args__ = (UniqueConstraint("profile", "transaction_id", name="uq_scep_transactions_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    profile: Mapped[str] = mapped_column(String(64))
    transaction_id: Mapped[str] = mapped_column(String(256))
    spki_sha256: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[int | None] = mapped_column(Id, nullable=True)  # the core's pending request
    certificate_id: Mapped[int | None] = mapped_column(Id, nullable=True)  # the certificate row issued
    requester: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


scep_transactions = table_of(ScepTransactionRow)


# A claim with neither certificate nor pending request this long after it was made belongs to an
# enrolment a crash or a lost database cut short: it is forgotten, and the client may start over.
ABANDONED_AFTER = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Transaction:
    id: int
    spki_sha256: str
    request_id: int | None
    certificate_id: int | None
    requester: str
    created_at: dt.datetime

    def abandoned(self, now: dt.datetime) -> bool:
        in_flight = self.request_id is None and self.certificate_id is None
        return in_flight and now - self.created_at > ABANDONED_AFTER


def _transaction(row: Row[Any]) -> Transaction:
    m = row._mapping
    return Transaction(m["id"], m["spki_sha256"], m["request_id"], m["certificate_id"], m["requester"], m["created_at"])


_COLUMNS = (
    scep_transactions.c.id,
    scep_transactions.c.spki_sha256,
    scep_transactions.c.request_id,
    scep_transactions.c.certificate_id,
    scep_transactions.c.requester,
    scep_transactions.c.created_at,
)
# Built once (every PKCSReq looks its transactionID up first): SQLAlchemy's statement building
# cost more than the SQLite lookup itself.
_FIND = select(*_COLUMNS).where(
    scep_transactions.c.profile == bindparam("profile"),
    scep_transactions.c.transaction_id == bindparam("transaction_id"),
)


class TransactionStore:
    def __init__(self, db: StateDatabase) -> None:
        self.db = db

    async def find(self, profile: str, transaction_id: str, now: dt.datetime) -> Transaction | None:
        """The row of this id, if any; an abandoned claim is released and not returned."""
        found = await read_record(self.db, _FIND, _transaction, {"profile": profile, "transaction_id": transaction_id})
        if found is not None and found.abandoned(now):
            await self.release(profile, transaction_id)
            return None
        return found

    async def claim(
        self, profile: str, transaction_id: str, spki: str, requester: str, now: dt.datetime
    ) -> Transaction | None:
        """Claim the id for this key (the caller found no row for it a moment ago); the row of a
        twin that claimed it in between, if one did."""

        def w(tx: Tx) -> None:
            tx.conn.execute(
                insert(scep_transactions).values(
                    profile=profile,
                    transaction_id=transaction_id,
                    spki_sha256=spki,
                    requester=requester[:255],
                    created_at=now,
                )
            )

        try:  # shares a commit with concurrent writes; a twin's unique violation stays its own
            await self.db.write_grouped(w)
        except IntegrityError:  # a concurrent twin inserted it first: its row wins
            twin = await self.find(profile, transaction_id, now)
            if twin is None:  # ...and gave it up again in between
                raise CAError(
                    "a concurrent request under this transactionID failed; send it again", FailureReason.UNAVAILABLE
                ) from None
            return twin
        return None

    def issued(self, profile: str, transaction_id: str) -> ResultWrite:
        """The ResultWrite that links the claimed row to its certificate, in the issuing commit."""

        def write(tx: Tx, certificate_id: int) -> None:
            tx.conn.execute(
                update(scep_transactions)
                .where(scep_transactions.c.profile == profile, scep_transactions.c.transaction_id == transaction_id)
                .values(certificate_id=certificate_id)
            )

        return write

    async def held(self, profile: str, transaction_id: str, request_id: int) -> None:
        await self.db.write(
            lambda tx: tx.conn.execute(
                update(scep_transactions)
                .where(scep_transactions.c.profile == profile, scep_transactions.c.transaction_id == transaction_id)
                .values(request_id=request_id)
            )
        )

    async def release(self, profile: str, transaction_id: str) -> None:
        """Forget a claim whose enrolment was refused: the client may try again under the same id."""
        await self.db.write(
            lambda tx: tx.conn.execute(
                delete(scep_transactions).where(
                    scep_transactions.c.profile == profile,
                    scep_transactions.c.transaction_id == transaction_id,
                    scep_transactions.c.certificate_id.is_(None),
                    scep_transactions.c.request_id.is_(None),
                )
            )
        )
