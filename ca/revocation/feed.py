"""The revocation and issuance feed: audit events read by sequence number.

Every revocation and issuance, from any process (a server, `tetra revoke`), writes
its audit event in the same transaction as the change, and audit sequence numbers
are assigned under a row lock, so they follow commit order. Reading events past a
known sequence number is therefore a complete, ordered change feed across
processes: OCSP caches drop what changed, and delta CRLs list what was revoked
after their base CRL's watermark.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from ca.revocation.tables import job_cursors
from ca.store.db import Tx
from ca.store.tables import audit_log

REVOKED = "certificate.revoked"  # written by CertificateAuthority.revoke
ISSUED = "certificate.issued"  # written by Issuer.issue once the signed certificate is stored


@dataclass(frozen=True)
class FeedEvent:
    seq: int
    action: str
    issuer: str
    serial: int


def parse_target(target: str) -> tuple[str, int] | None:
    """'issuer/serialhex' -> (issuer, serial); None for other targets."""
    issuer, sep, serial = target.rpartition("/")
    if not sep or not issuer:
        return None
    try:
        return issuer, int(serial, 16)
    except ValueError:
        return None


def head(conn: Connection) -> int:
    """The newest audit sequence number (0 on an empty log)."""
    return int(conn.execute(select(func.max(audit_log.c.seq))).scalar() or 0)


def events_since(conn: Connection, after: int, actions: tuple[str, ...], limit: int = 1000) -> list[FeedEvent]:
    rows = conn.execute(
        select(audit_log.c.seq, audit_log.c.action, audit_log.c.target)
        .where(audit_log.c.action.in_(actions), audit_log.c.seq > after)
        .order_by(audit_log.c.seq)
        .limit(limit)
    )
    events = []
    for row in rows:
        parsed = parse_target(row.target)
        if parsed is not None:
            events.append(FeedEvent(int(row.seq), row.action, parsed[0], parsed[1]))
    return events


def read_cursor(conn: Connection, name: str) -> int | None:
    value = conn.execute(select(job_cursors.c.position).where(job_cursors.c.name == name)).scalar()
    return None if value is None else int(value)


def write_cursor(tx: Tx, name: str, position: int, now: dt.datetime) -> None:
    """Move a cursor forward (never back: two leaders in turn must not replay each other)."""
    updated = tx.conn.execute(
        update(job_cursors)
        .where(job_cursors.c.name == name, job_cursors.c.position < position)
        .values(position=position, updated_at=now)
    )
    if updated.rowcount == 0 and read_cursor(tx.conn, name) is None:
        tx.conn.execute(insert(job_cursors).values(name=name, position=position, updated_at=now))
