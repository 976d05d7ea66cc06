"""CMP transactions: one row per (profile, transactionID), the state every later message checks.

RFC 9810 §5.1.1 ties an enrolment together by its transactionID and nonces: the ir and its
ip, the certConf and its pkiconf, the pollReqs in between. A server process may die between any
two of them and another may answer the next, so nothing of it lives in memory. The row says:

- who asked (``requester``) and for which key (``spki_sha256``): a re-sent ir under the same id
  and key gets the same certificate (CMP-13), another key is transactionIdInUse (CMP-05);
- the request's last senderNonce (``their_nonce``): the same message again is a replay;
- our last senderNonce (``our_nonce``): a certConf or pollReq must echo it as recipNonce (CMP-06);
- the core's pending request (``request_id``) while it waits for approval, then the certificate
  issued (``certificate_id``) and by when a certConf must come (``confirm_by``, RFC 9483 §4.1.1:
  a certificate never confirmed is revoked; protocols/cmp/unconfirmed.py does it).

The row is claimed before issuing, inside a unique constraint, as SCEP's is (two concurrent
twins cannot both issue), and linked to its certificate in the issuing commit.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Index, Integer, Row, String, UniqueConstraint, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from ca.errors import CAError, FailureReason
from ca.interface import ResultWrite
from ca.state_store import Base, Id, StateDatabase, Tx, UTCDateTime, read_record, record_from_row, table_of


class State(enum.StrEnum):
    CLAIMED = "claimed"  # being issued right now
    WAITING = "waiting"  # the core holds it for approval; the client polls
    UNCONFIRMED = "unconfirmed"  # issued; a certConf is due by confirm_by
    CONFIRMED = "confirmed"  # certConf accepted, or implicitConfirm granted
    REJECTED = "rejected"  # the client's certConf refused the certificate: it was revoked
    REVOKED = "revoked"  # no certConf came in time: it was revoked


class CmpTransactionRow(Base):
    __tablename__ = "cmp_transactions"
    __table_args__ = (
        UniqueConstraint("profile", "transaction_id", name="uq_cmp_transactions_id"),
        Index("ix_cmp_transactions_overdue", "state", "confirm_by"),  # the unconfirmed sweep
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    profile: Mapped[str] = mapped_column(String(64))
    transaction_id: Mapped[str] = mapped_column(String(128))  # hex
    body_type: Mapped[str] = mapped_column(String(16))  # ir, cr, p10cr, kur
    cert_req_id: Mapped[int] = mapped_column(Integer)
    spki_sha256: Mapped[str] = mapped_column(String(64))
    requester: Mapped[str] = mapped_column(String(255))
    their_nonce: Mapped[str] = mapped_column(String(128))  # hex
    our_nonce: Mapped[str] = mapped_column(String(128))  # hex
    state: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[int | None] = mapped_column(Id, nullable=True)
    certificate_id: Mapped[int | None] = mapped_column(Id, nullable=True)
    confirm_by: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


cmp_transactions = table_of(CmpTransactionRow)

# A claim with neither certificate nor pending request this long after it was made belongs to an
# enrolment a crash cut short: it is forgotten, and the client may start over.
ABANDONED_AFTER = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Transaction:
    id: int
    profile: str
    transaction_id: str
    body_type: str
    cert_req_id: int
    spki_sha256: str
    requester: str
    their_nonce: str
    our_nonce: str
    state: str
    request_id: int | None
    certificate_id: int | None
    confirm_by: dt.datetime | None
    created_at: dt.datetime

    def abandoned(self, now: dt.datetime) -> bool:
        return self.state == State.CLAIMED and now - self.created_at > ABANDONED_AFTER


@dataclass(frozen=True)
class Claim:
    """What a new enrolment stores before the core issues it."""

    profile: str
    transaction_id: bytes
    body_type: str
    cert_req_id: int
    spki_sha256: str
    requester: str
    their_nonce: bytes
    our_nonce: bytes


def _transaction(row: Row[Any]) -> Transaction:
    return record_from_row(Transaction, row)


def _key(profile: str, transaction_id: bytes) -> tuple[Any, ...]:
    return cmp_transactions.c.profile == profile, cmp_transactions.c.transaction_id == transaction_id.hex()


class TransactionStore:
    def __init__(self, db: StateDatabase) -> None:
        self.db = db

    async def find(self, profile: str, transaction_id: bytes, now: dt.datetime) -> Transaction | None:
        """The row of this id, if any; an abandoned claim is released and not returned."""
        found = await read_record(self.db, select(cmp_transactions).where(*_key(profile, transaction_id)), _transaction)
        if found is not None and found.abandoned(now):
            await self.release(profile, transaction_id)
            return None
        return found

    async def claim(self, claim: Claim, now: dt.datetime) -> Transaction | None:
        """Claim the id (the caller found no row a moment ago); a twin's row if one won the race."""

        def w(tx: Tx) -> None:
            tx.conn.execute(
                insert(cmp_transactions).values(
                    profile=claim.profile,
                    transaction_id=claim.transaction_id.hex(),
                    body_type=claim.body_type,
                    cert_req_id=claim.cert_req_id,
                    spki_sha256=claim.spki_sha256,
                    requester=claim.requester[:255],
                    their_nonce=claim.their_nonce.hex(),
                    our_nonce=claim.our_nonce.hex(),
                    state=State.CLAIMED,
                    created_at=now,
                )
            )

        try:
            await self.db.write_grouped(w)
        except IntegrityError:
            twin = await self.find(claim.profile, claim.transaction_id, now)
            if twin is None:
                raise CAError(
                    "a concurrent request under this transactionID failed; send it again", FailureReason.UNAVAILABLE
                ) from None
            return twin
        return None

    def issued(self, profile: str, transaction_id: bytes, confirm_by: dt.datetime | None) -> ResultWrite:
        """Links the row to its certificate in the issuing commit; ``confirm_by`` None: confirmed
        already (implicitConfirm granted)."""
        state = State.CONFIRMED if confirm_by is None else State.UNCONFIRMED

        def write(tx: Tx, certificate_id: int) -> None:
            tx.conn.execute(
                update(cmp_transactions)
                .where(*_key(profile, transaction_id))
                .values(certificate_id=certificate_id, state=state, confirm_by=confirm_by)
            )

        return write

    async def held(self, profile: str, transaction_id: bytes, request_id: int) -> None:
        await self._set(profile, transaction_id, request_id=request_id, state=State.WAITING)

    async def delivered(
        self, profile: str, transaction_id: bytes, certificate_id: int, confirm_by: dt.datetime | None
    ) -> None:
        """A waiting request was approved and issued; the poll that found it hands it out now."""
        state = State.CONFIRMED if confirm_by is None else State.UNCONFIRMED
        await self._set(profile, transaction_id, certificate_id=certificate_id, state=state, confirm_by=confirm_by)

    async def exchanged(self, row: Transaction, their_nonce: bytes, our_nonce: bytes) -> bool:
        """Record the nonces of a message and of our answer to it. False when another message of
        the transaction got in between (its nonce changed since ``row`` was read): a replay race."""

        def w(tx: Tx) -> bool:
            result = tx.conn.execute(
                update(cmp_transactions)
                .where(cmp_transactions.c.id == row.id, cmp_transactions.c.their_nonce == row.their_nonce)
                .values(their_nonce=their_nonce.hex(), our_nonce=our_nonce.hex())
            )
            return bool(result.rowcount == 1)

        return await self.db.write(w)

    async def settle(self, row: Transaction, state: State) -> bool:
        """Move an unconfirmed transaction to ``state`` (confirmed, rejected, revoked) once: False
        when something else settled it first."""

        def w(tx: Tx) -> bool:
            result = tx.conn.execute(
                update(cmp_transactions)
                .where(cmp_transactions.c.id == row.id, cmp_transactions.c.state == State.UNCONFIRMED)
                .values(state=state)
            )
            return bool(result.rowcount == 1)

        return await self.db.write(w)

    async def overdue(self, now: dt.datetime, limit: int = 100) -> list[Transaction]:
        """Issued certificates whose certConf did not come in time."""
        query = (
            select(cmp_transactions)
            .where(cmp_transactions.c.state == State.UNCONFIRMED, cmp_transactions.c.confirm_by < now)
            .order_by(cmp_transactions.c.confirm_by)
            .limit(limit)
        )
        return await self.db.read(lambda conn: [_transaction(row) for row in conn.execute(query)])

    async def release(self, profile: str, transaction_id: bytes) -> None:
        """Forget a claim whose enrolment was refused: the client may try again under the same id."""
        await self.db.write(
            lambda tx: tx.conn.execute(
                delete(cmp_transactions).where(
                    *_key(profile, transaction_id), cmp_transactions.c.state == State.CLAIMED
                )
            )
        )

    async def _set(self, profile: str, transaction_id: bytes, **values: Any) -> None:
        await self.db.write(
            lambda tx: tx.conn.execute(update(cmp_transactions).where(*_key(profile, transaction_id)).values(**values))
        )
