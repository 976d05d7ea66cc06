"""The outbox: messages queued once, claimed by one sender at a time, retried, kept as the record.

Queuing is INSERT .. ON CONFLICT DO NOTHING on the unique key, so the planners of two processes
(or a restart) cannot queue one notice twice (CLM-02). Sending starts with a claim: an UPDATE
that only succeeds while the row is unclaimed or its claim has expired, so two processes never
send the same row at once, and a process that dies mid-send leaves the row to be claimed again
once its claim runs out (never lost, CLM-03). A failure waits 30 s * 2^(attempts - 1), at most an
hour; after ``max_attempts`` the row is given up, with an audit event and an ERROR line.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Row

from ca.audit import AuditEvent
from ca.inventory.upsert import dialect_insert
from ca.notices.tables import outbox
from ca.store.db import Database, Tx

log = logging.getLogger("tetra.notify")

CLAIM_FOR = dt.timedelta(minutes=2)  # longer than any transport's timeout
FIRST_RETRY = dt.timedelta(seconds=30)
LONGEST_WAIT = dt.timedelta(hours=1)
o = outbox.c


@dataclass(frozen=True)
class Message:
    key: str
    rule: str
    level: str
    channel: str  # email | webhook
    recipient: str
    subject: str
    body: str
    inventory_id: int | None = None
    id: int = 0  # set once queued
    attempts: int = 0
    last_error: str | None = None
    gave_up_at: dt.datetime | None = None
    created_at: dt.datetime | None = None  # when it was queued (as read back from the outbox)
    delivered_at: dt.datetime | None = None


# An outbox row's state, as operators filter on it: waiting for its first try, sent, being
# retried after failures, or given up.
OUTBOX_STATES = ("queued", "delivered", "failing", "given-up")


@dataclass(frozen=True)
class OutboxStatus:
    queued: int
    delivered: int
    failing: int
    given_up: int
    troubled: list[Message] = field(default_factory=list)  # failing or given up, most recent first


def retry_delay(attempts: int) -> dt.timedelta:
    """The wait after the ``attempts``-th failure."""
    wait: dt.timedelta = FIRST_RETRY * (2 ** max(attempts - 1, 0))
    return min(wait, LONGEST_WAIT)


class OutboxStore:
    def __init__(self, db: Database, *, max_attempts: int = 8) -> None:
        self._db = db
        self.max_attempts = max_attempts

    async def queue(self, messages: Sequence[Message], now: dt.datetime) -> int:
        """Queue what is not queued yet; returns how many were new."""
        if not messages:
            return 0

        def w(tx: Tx) -> int:
            new = 0
            # In key order: two processes queuing overlapping sets wait on each other's keys in the
            # same order, so PostgreSQL never finds them deadlocked.
            for m in sorted(messages, key=lambda m: m.key):
                statement = dialect_insert(tx.conn, outbox).values(
                    key=m.key[:700],
                    rule=m.rule[:64],
                    level=m.level,
                    inventory_id=m.inventory_id,
                    channel=m.channel,
                    recipient=m.recipient[:512],
                    subject=m.subject,
                    body=m.body,
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
                inserted = tx.conn.execute(
                    statement.on_conflict_do_nothing(index_elements=["key"]).returning(o.id)
                ).scalar()
                new += inserted is not None
            return new

        return await self._db.write(w)

    async def claim_due(self, holder: str, now: dt.datetime, limit: int = 50) -> list[Message]:
        """Rows due by ``now`` that this holder now has the claim on (no other sender has them)."""
        free = or_(o.claimed_until.is_(None), o.claimed_until <= now)
        due = and_(o.delivered_at.is_(None), o.gave_up_at.is_(None), o.next_attempt_at <= now)
        candidates = select(o.id).where(due, free).order_by(o.next_attempt_at, o.id).limit(limit)

        def w(tx: Tx) -> list[int]:
            won = []
            for row_id in tx.conn.execute(candidates).scalars().all():
                claimed = tx.conn.execute(
                    update(outbox)
                    .where(o.id == row_id, due, free)
                    .values(claimed_by=holder, claimed_until=now + CLAIM_FOR)
                )
                if claimed.rowcount == 1:
                    won.append(int(row_id))
            return won

        ids = await self._db.write(w)
        if not ids:
            return []
        query = select(outbox).where(o.id.in_(ids), o.claimed_by == holder).order_by(o.id)
        return await self._db.read(lambda conn: [_message(r) for r in conn.execute(query)])

    async def delivered(self, message_id: int, now: dt.datetime) -> None:
        await self._db.write(
            lambda tx: tx.conn.execute(
                update(outbox)
                .where(o.id == message_id)
                .values(delivered_at=now, attempts=o.attempts + 1, claimed_by=None, claimed_until=None, last_error=None)
            )
        )

    async def failed(self, message_id: int, error: str, now: dt.datetime) -> bool:
        """Record a failed attempt; True when that was the last one (the row is given up)."""
        reason = " ".join(error.split())[:1000] or "unknown error"

        def w(tx: Tx) -> tuple[bool, Any]:
            row = tx.conn.execute(select(o.attempts, o.key, o.recipient).where(o.id == message_id)).one()
            attempts = int(row.attempts) + 1
            values: dict[str, Any] = {"attempts": attempts, "last_error": reason, "claimed_by": None}
            values["claimed_until"] = None
            give_up = attempts >= self.max_attempts
            if give_up:
                values["gave_up_at"] = now
                details = {"key": row.key, "recipient": row.recipient, "attempts": attempts, "error": reason}
                tx.audit(AuditEvent("notifications", "notification.failed", f"notification/{message_id}", details))
            else:
                values["next_attempt_at"] = now + retry_delay(attempts)
            tx.conn.execute(update(outbox).where(o.id == message_id).values(values))
            return give_up, row

        give_up, row = await self._db.write(w)
        if give_up:
            log.error(
                "notification %s to %s given up after %d attempts: %s", row.key, row.recipient, row.attempts + 1, reason
            )
        return give_up

    async def status(self, limit: int = 20) -> OutboxStatus:
        pending = and_(o.delivered_at.is_(None), o.gave_up_at.is_(None))
        counts = select(
            func.count().filter(pending),
            func.count().filter(o.delivered_at.is_not(None)),
            func.count().filter(and_(pending, o.attempts > 0)),
            func.count().filter(o.gave_up_at.is_not(None)),
        ).select_from(outbox)
        troubled = select(outbox).where(o.delivered_at.is_(None), o.attempts > 0).order_by(o.id.desc()).limit(limit)

        def r(conn: Any) -> OutboxStatus:
            queued, delivered, failing, given_up = conn.execute(counts).one()
            rows = [_message(row) for row in conn.execute(troubled)]
            return OutboxStatus(queued, delivered, failing, given_up, rows)

        return await self._db.read(r)

    async def messages(self, *, state: str | None, after_id: int | None, limit: int) -> list[Message]:
        """Rows in id order after ``after_id``; ``state``: one of OUTBOX_STATES."""
        pending = and_(o.delivered_at.is_(None), o.gave_up_at.is_(None))
        where = {
            "queued": and_(pending, o.attempts == 0),
            "delivered": o.delivered_at.is_not(None),
            "failing": and_(pending, o.attempts > 0),
            "given-up": o.gave_up_at.is_not(None),
        }
        query = select(outbox).where(o.id > (after_id or 0)).order_by(o.id).limit(limit)
        if state is not None:
            query = query.where(where[state])
        return await self._db.read(lambda conn: [_message(row) for row in conn.execute(query)])

    async def get(self, key: str) -> Message | None:
        return await self._db.read_first(select(outbox).where(o.key == key), _message)


def _message(row: Row[Any]) -> Message:
    m = row._mapping
    return Message(
        key=m["key"],
        rule=m["rule"],
        level=m["level"],
        channel=m["channel"],
        recipient=m["recipient"],
        subject=m["subject"],
        body=m["body"],
        inventory_id=m["inventory_id"],
        id=m["id"],
        attempts=m["attempts"],
        last_error=m["last_error"],
        gave_up_at=m["gave_up_at"],
        created_at=m["created_at"],
        delivered_at=m["delivered_at"],
    )
