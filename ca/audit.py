"""Append-only audit log: every event carries the hash of the one before it.

Events are written in the same transaction as the change they describe, so an
issuance without its audit entry cannot commit (if the log cannot be written,
issuance stops). `verify_chain` walks the log and finds any edited, deleted or
inserted row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Executable, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ca.store.tables import audit_head, audit_log

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEvent:
    actor: str
    action: str  # certificate.intent, certificate.issued, certificate.revoked...
    target: str  # "issuing-ca/3f2a..." or "request/12"
    details: dict[str, object] = field(default_factory=dict)


def event_hash(prev_hash: str, seq: int, at: dt.datetime, event: AuditEvent) -> str:
    body = json.dumps(
        {
            "seq": seq,
            "at": at.astimezone(dt.UTC).isoformat(),
            "actor": event.actor,
            "action": event.action,
            "target": event.target,
            "details": event.details,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


_HEAD_SELECT = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
_HEAD_UPDATE = update(audit_head).where(audit_head.c.id == 1)


def _genesis_insert(dialect: str) -> Executable:
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return dialect_insert(audit_head).values(id=1, seq=0, hash=GENESIS).on_conflict_do_nothing(index_elements=["id"])


_LOG_INSERT = insert(audit_log)


def append_events(conn: Connection, events: Iterable[AuditEvent], at: dt.datetime) -> None:
    """Chain and insert events; the head row lock serialises writers across processes."""
    events = list(events)
    if not events:
        return
    at = at.replace(microsecond=(at.microsecond // 1000) * 1000)  # survive every backend's precision
    head = conn.execute(_HEAD_SELECT).first()
    if head is None:
        # The first event ever: create the head, unless a concurrent first writer already did
        # (then wait for its commit and lock its row rather than fail on the duplicate key).
        conn.execute(_genesis_insert(conn.dialect.name))
        head = conn.execute(_HEAD_SELECT).one()
    seq, prev = head.seq, head.hash
    rows = []
    for event in events:
        seq += 1
        digest = event_hash(prev, seq, at, event)
        rows.append(
            {
                "seq": seq,
                "at": at,
                "actor": event.actor,
                "action": event.action,
                "target": event.target,
                "details": json.dumps(event.details, sort_keys=True, separators=(",", ":"), default=str),
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    conn.execute(_LOG_INSERT, rows)
    conn.execute(_HEAD_UPDATE, {"seq": seq, "hash": prev})


@dataclass(frozen=True)
class ChainReport:
    events: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(conn: Connection, batch: int = 5000) -> ChainReport:
    """Recompute every hash; report gaps in sequence numbers and broken links."""
    problems: list[str] = []
    expected_seq, prev, count, last = 1, GENESIS, 0, 0
    query = select(audit_log).order_by(audit_log.c.seq)
    for row in conn.execution_options(yield_per=batch).execute(query):
        count += 1
        if row.seq != expected_seq:
            problems.append(f"sequence gap: expected {expected_seq}, found {row.seq}")
        if row.prev_hash != prev:
            problems.append(f"event {row.seq}: prev_hash does not match event {row.seq - 1}")
        event = AuditEvent(row.actor, row.action, row.target, json.loads(row.details))
        digest = event_hash(row.prev_hash, row.seq, row.at, event)
        if digest != row.hash:
            problems.append(f"event {row.seq}: content does not match its hash (edited)")
        expected_seq, prev, last = row.seq + 1, row.hash, row.seq
        if len(problems) > 100:
            break
    head = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).first()
    if head is not None and (head.seq != last or (count and head.hash != prev)):
        problems.append(f"head says event {head.seq} is last, the log ends at {last} (rows deleted)")
    return ChainReport(count, tuple(problems))


@dataclass(frozen=True)
class LoggedEvent:
    """An event as the log holds it: its place in the chain and when it was written."""

    seq: int
    at: dt.datetime
    event: AuditEvent


@dataclass(frozen=True)
class AuditFilter:
    """Which events an operator looks for: exact actor and action (an action ending in "." is a
    prefix: "certificate." for every certificate event), a target prefix, a time window."""

    actor: str | None = None
    action: str | None = None
    target: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


def read_events(
    conn: Connection, flt: AuditFilter, *, after_seq: int | None, limit: int, newest_first: bool = False
) -> list[LoggedEvent]:
    """Events matching ``flt`` in chain order, after ``after_seq``, at most ``limit``; or, for a
    person reading back from now (the dashboard), newest first and before ``after_seq``."""
    c = audit_log.c
    if newest_first:
        query = select(audit_log).order_by(c.seq.desc()).limit(limit)
        if after_seq is not None:
            query = query.where(c.seq < after_seq)
    else:
        query = select(audit_log).where(c.seq > (after_seq or 0)).order_by(c.seq).limit(limit)
    if flt.actor is not None:
        query = query.where(c.actor == flt.actor)
    if flt.action is not None:
        prefix = flt.action.endswith(".")
        query = query.where(c.action.startswith(flt.action, autoescape=True) if prefix else c.action == flt.action)
    if flt.target is not None:
        query = query.where(c.target.startswith(flt.target, autoescape=True))
    if flt.since is not None:
        query = query.where(c.at >= flt.since)
    if flt.until is not None:
        query = query.where(c.at < flt.until)
    return [
        LoggedEvent(row.seq, row.at, AuditEvent(row.actor, row.action, row.target, json.loads(row.details)))
        for row in conn.execute(query)
    ]
