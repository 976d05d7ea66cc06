"""SQL for CRLs: revoked entries straight from the certificates table, CRL numbers,
the CRL rows from reservation to publication, and the latest published CRL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, bindparam, delete, insert, select, text, type_coerce, update
from sqlalchemy.engine import Connection

from ca.revocation import feed
from ca.revocation.tables import crls
from ca.store.db import Tx
from ca.store.repositories import CounterRepository, serial_text
from ca.store.tables import UTCDateTime, certificates, counters

# (serial hex, revocation time, reason, invalidity date); times as the driver hands them back.
RevokedEntry = tuple[str, Any, str | None, Any]


@dataclass(frozen=True)
class CrlRecord:
    id: int
    issuer: str
    scope: str
    kind: str
    number: int
    base_number: int | None
    watermark: int
    entries: int
    this_update: dt.datetime
    next_update: dt.datetime
    sha256: str | None
    der: bytes | None = None


def counter_name(issuer: str) -> str:
    """One number sequence per issuer for all its scopes and deltas (RFC 5280 §5.2.3, §5.2.4)."""
    return f"crl:{issuer}"


def number_floor(now: dt.datetime) -> int:
    """Milliseconds since 1970: a restored backup never reuses a number (ST-16), and the
    counter row keeps numbers increasing when the clock steps back (ST-13)."""
    return int(now.timestamp() * 1000)


def _entry_columns() -> tuple[Any, ...]:
    # type_coerce to String skips the UTCDateTime round trip: the encoder reads the
    # stored text (SQLite) or the driver's datetime (PostgreSQL) as it is.
    return (
        certificates.c.serial,
        type_coerce(certificates.c.revoked_at, String),
        certificates.c.revocation_reason,
        type_coerce(certificates.c.invalidity_date, String),
    )


# A literal statement: its untyped columns come back as the driver hands them, which saves
# SQLAlchemy's per-row processing on pages of tens of thousands of rows. Uses the
# ix_certificates_status index ((status, id) order on both backends).
_REVOKED_PAGE = text(
    "SELECT id, serial, revoked_at, revocation_reason, invalidity_date FROM certificates "
    "WHERE status = 'revoked' AND issuer = :issuer AND id > :after_id AND not_after >= :not_after_from "
    "ORDER BY id LIMIT :limit"
).bindparams(bindparam("not_after_from", type_=UTCDateTime()))


def revoked_page(
    conn: Connection, issuer: str, not_after_from: dt.datetime, after_id: int, limit: int
) -> tuple[list[RevokedEntry], int]:
    """Revoked certificates of an issuer not expired before not_after_from, by id (keyset paging)."""
    rows = conn.execute(
        _REVOKED_PAGE, {"issuer": issuer, "after_id": after_id, "not_after_from": not_after_from, "limit": limit}
    ).all()
    last = int(rows[-1][0]) if rows else after_id
    return [(r[1], r[2], r[3], r[4]) for r in rows], last


def revoked_since(conn: Connection, issuer: str, after_seq: int, not_after_from: dt.datetime) -> list[RevokedEntry]:
    """Certificates of an issuer revoked after audit sequence number after_seq (delta CRLs)."""
    serials: list[str] = []
    position = after_seq
    while True:
        events = feed.events_since(conn, position, (feed.REVOKED,), limit=5000)
        serials.extend(serial_text(e.serial) for e in events if e.issuer == issuer)
        if len(events) < 5000:
            break
        position = events[-1].seq
    entries: list[RevokedEntry] = []
    for start in range(0, len(serials), 500):
        rows = conn.execute(
            select(*_entry_columns()).where(
                certificates.c.issuer == issuer,
                certificates.c.serial.in_(serials[start : start + 500]),
                certificates.c.status == "revoked",
                certificates.c.not_after >= not_after_from,
            )
        )
        entries.extend((r[0], r[1], r[2], r[3]) for r in rows)
    return entries


def reserve(
    tx: Tx,
    issuer: str,
    scope: str,
    kind: str,
    *,
    base_number: int | None,
    watermark: int,
    entries: int,
    this_update: dt.datetime,
    next_update: dt.datetime,
    now: dt.datetime,
) -> tuple[int, int]:
    """Take the next CRL number and record the intent; returns (row id, number)."""
    number = CounterRepository.next_value(tx, counter_name(issuer), at_least=number_floor(now))
    row_id = tx.conn.execute(
        insert(crls)
        .values(
            issuer=issuer,
            scope=scope,
            kind=kind,
            number=number,
            base_number=base_number,
            status="building",
            watermark=watermark,
            entries=entries,
            this_update=this_update,
            next_update=next_update,
            created_at=now,
        )
        .returning(crls.c.id)
    ).scalar_one()
    return int(row_id), number


def record_tbs(tx: Tx, row_id: int, tbs: bytes) -> None:
    """The intent of a reserved CRL: its exact TBSCertList, durable before the key signs it (SEC-04)."""
    tx.conn.execute(update(crls).where(crls.c.id == row_id).values(tbs=tbs))


def publish(tx: Tx, row_id: int, der: bytes, sha256: str, now: dt.datetime, keep: int) -> None:
    """Store the signed CRL, then drop all but the newest `keep` of its scope and kind."""
    row = tx.conn.execute(select(crls.c.issuer, crls.c.scope, crls.c.kind).where(crls.c.id == row_id)).one()
    # Publishers of one issuer (the leader and `tetra crl generate`) take turns on the counter
    # row, so their clean-ups cannot lock each other's rows in opposite orders.
    tx.conn.execute(select(counters.c.value).where(counters.c.name == counter_name(row.issuer)).with_for_update())
    tx.conn.execute(
        update(crls)
        .where(crls.c.id == row_id)
        .values(status="published", der=der, tbs=None, sha256=sha256, published_at=now)
    )
    kept = (
        select(crls.c.id)
        .where(
            crls.c.issuer == row.issuer,
            crls.c.scope == row.scope,
            crls.c.kind == row.kind,
            crls.c.status == "published",
        )
        .order_by(crls.c.number.desc())
        .limit(keep)
    )
    kept_ids = [r[0] for r in tx.conn.execute(kept)]
    tx.conn.execute(
        delete(crls).where(
            crls.c.issuer == row.issuer,
            crls.c.scope == row.scope,
            crls.c.kind == row.kind,
            crls.c.status == "published",
            crls.c.id.not_in(kept_ids),
        )
    )
    # Intents abandoned by a crash keep their number (never reused), but not their place.
    tx.conn.execute(
        update(crls)
        .where(crls.c.status == "building", crls.c.created_at < now - dt.timedelta(hours=1))
        .values(status="failed")
    )


def mark_failed(tx: Tx, row_ids: Sequence[int]) -> None:
    tx.conn.execute(update(crls).where(crls.c.id.in_(list(row_ids))).values(status="failed"))


_META = (
    crls.c.id,
    crls.c.issuer,
    crls.c.scope,
    crls.c.kind,
    crls.c.number,
    crls.c.base_number,
    crls.c.watermark,
    crls.c.entries,
    crls.c.this_update,
    crls.c.next_update,
    crls.c.sha256,
)


def latest(conn: Connection, issuer: str, scope: str, kind: str, *, with_der: bool) -> CrlRecord | None:
    columns = (*_META, crls.c.der) if with_der else _META
    row = conn.execute(
        select(*columns)
        .where(crls.c.issuer == issuer, crls.c.scope == scope, crls.c.kind == kind, crls.c.status == "published")
        .order_by(crls.c.number.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return CrlRecord(
        int(row.id),
        row.issuer,
        row.scope,
        row.kind,
        int(row.number),
        None if row.base_number is None else int(row.base_number),
        int(row.watermark),
        int(row.entries),
        row.this_update,
        row.next_update,
        row.sha256,
        bytes(row.der) if with_der else None,
    )
