"""SQL for OCSP: stored responses, and certificate status as the core records it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ca.revocation.model import CertStatus, status_of_row
from ca.revocation.responder import RESPONDER_PROFILE
from ca.revocation.tables import ocsp_responses
from ca.store.db import Tx
from ca.store.tables import certificates

_REPLACED = (
    "status",
    "revoked_at",
    "revocation_reason",
    "cert_not_after",
    "der",
    "this_update",
    "next_update",
    "produced_at",
)


@dataclass(frozen=True)
class CertRow:
    """What OCSP needs of a certificates row."""

    issuer: str
    serial: str  # lowercase hex, as stored
    status: str
    revoked_at: dt.datetime | None
    reason: str | None
    created_at: dt.datetime
    not_after: dt.datetime
    profile: str = ""

    def ocsp_status(self) -> CertStatus:
        return status_of_row(self.status, revoked_at=self.revoked_at, reason=self.reason)


@dataclass(frozen=True)
class StoredResponse:
    issuer: str
    serial: str
    hash_alg: str
    status: str
    revoked_at: dt.datetime | None
    reason: str | None
    der: bytes
    this_update: dt.datetime
    next_update: dt.datetime
    produced_at: dt.datetime


# Each tuple lists its columns in the order of its record's fields (CertRow, StoredResponse),
# so `_cert_row` and `_stored` build the record by position: the columns are named once.
_CERT_COLUMNS = (
    certificates.c.issuer,
    certificates.c.serial,
    certificates.c.status,
    certificates.c.revoked_at,
    certificates.c.revocation_reason,
    certificates.c.created_at,
    certificates.c.not_after,
    certificates.c.profile,
)
_RESPONSE_COLUMNS = (
    ocsp_responses.c.issuer,
    ocsp_responses.c.serial,
    ocsp_responses.c.hash_alg,
    ocsp_responses.c.status,
    ocsp_responses.c.revoked_at,
    ocsp_responses.c.revocation_reason,
    ocsp_responses.c.der,
    ocsp_responses.c.this_update,
    ocsp_responses.c.next_update,
    ocsp_responses.c.produced_at,
)


def _cert_row(row: Any) -> CertRow:
    return CertRow(*(row._mapping[column] for column in _CERT_COLUMNS))


def _stored(row: Any) -> StoredResponse:
    return StoredResponse(*(row._mapping[column] for column in _RESPONSE_COLUMNS))


def certificate_rows(conn: Connection, issuer: str, serials: Iterable[str]) -> dict[str, CertRow]:
    wanted = list(dict.fromkeys(serials))
    found: dict[str, CertRow] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = conn.execute(
            select(*_CERT_COLUMNS).where(certificates.c.issuer == issuer, certificates.c.serial.in_(chunk))
        )
        found.update((row.serial, _cert_row(row)) for row in rows)
    return found


def stored_response(conn: Connection, issuer: str, serial: str, hash_alg: str) -> StoredResponse | None:
    row = conn.execute(
        select(*_RESPONSE_COLUMNS).where(
            ocsp_responses.c.issuer == issuer, ocsp_responses.c.serial == serial, ocsp_responses.c.hash_alg == hash_alg
        )
    ).first()
    return None if row is None else _stored(row)


def stored_for_serials(conn: Connection, issuer: str, serials: list[str]) -> list[StoredResponse]:
    out: list[StoredResponse] = []
    for start in range(0, len(serials), 500):
        rows = conn.execute(
            select(*_RESPONSE_COLUMNS).where(
                ocsp_responses.c.issuer == issuer, ocsp_responses.c.serial.in_(serials[start : start + 500])
            )
        )
        out.extend(_stored(r) for r in rows)
    return out


def stored_page(
    conn: Connection, after_id: int, valid_after: dt.datetime, limit: int
) -> tuple[list[StoredResponse], int]:
    """Responses still valid past valid_after, by id, for warming the cache."""
    rows = conn.execute(
        select(ocsp_responses.c.id, *_RESPONSE_COLUMNS)
        .where(ocsp_responses.c.id > after_id, ocsp_responses.c.next_update > valid_after)
        .order_by(ocsp_responses.c.id)
        .limit(limit)
    ).all()
    last = int(rows[-1].id) if rows else after_id
    return [_stored(r) for r in rows], last


_RESPONSES_WITH_CERTIFICATES = ocsp_responses.join(
    certificates,
    and_(certificates.c.issuer == ocsp_responses.c.issuer, certificates.c.serial == ocsp_responses.c.serial),
)


def due_for_refresh(
    conn: Connection, older_than: dt.datetime, now: dt.datetime, limit: int
) -> list[tuple[CertRow, str]]:
    """(certificate, hash) of responses whose thisUpdate is older than older_than, for
    certificates not yet expired; with the certificate's status as it is now."""
    rows = conn.execute(
        select(*_CERT_COLUMNS, ocsp_responses.c.hash_alg)
        .select_from(_RESPONSES_WITH_CERTIFICATES)
        .where(ocsp_responses.c.this_update < older_than, ocsp_responses.c.cert_not_after > now)
        .order_by(ocsp_responses.c.this_update)
        .limit(limit)
    )
    return [(_cert_row(r), r.hash_alg) for r in rows]


def missing_responses(conn: Connection, hash_alg: str, now: dt.datetime, limit: int) -> list[CertRow]:
    """Issued or revoked certificates without a stored response ('signing' rows are never
    pre-signed: they are unknown until settled); not the delegated responders' own
    certificates, which carry ocsp-nocheck."""
    join = certificates.outerjoin(
        ocsp_responses,
        and_(
            ocsp_responses.c.issuer == certificates.c.issuer,
            ocsp_responses.c.serial == certificates.c.serial,
            ocsp_responses.c.hash_alg == hash_alg,
        ),
    )
    rows = conn.execute(
        select(*_CERT_COLUMNS)
        .select_from(join)
        .where(
            ocsp_responses.c.id.is_(None),
            certificates.c.not_after > now,
            certificates.c.status.in_(("issued", "revoked")),
            certificates.c.profile != RESPONDER_PROFILE,  # id-pkix-ocsp-nocheck: nobody asks
        )
        .limit(limit)
    )
    return [_cert_row(r) for r in rows]


def good_but_revoked(conn: Connection, limit: int) -> list[tuple[CertRow, str]]:
    """Stored 'good' responses whose certificate is revoked: a crash between the revocation
    and the new response leaves these; the reconciler re-signs them."""
    rows = conn.execute(
        select(*_CERT_COLUMNS, ocsp_responses.c.hash_alg)
        .select_from(_RESPONSES_WITH_CERTIFICATES)
        .where(ocsp_responses.c.status == "good", certificates.c.status == "revoked")
        .limit(limit)
    )
    return [(_cert_row(r), r.hash_alg) for r in rows]


def upsert_responses(tx: Tx, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert or replace stored responses; a 'revoked' one is never replaced by a 'good' one,
    whatever order concurrent writers commit in. 'Good' rows for certificates revoked
    meanwhile are dropped before writing. Returns the rows offered to the database."""
    if not rows:
        return []
    good = {(r["issuer"], r["serial"]) for r in rows if r["status"] == "good"}
    if good:
        revoked_now: set[tuple[str, str]] = set()
        for issuer in {i for i, _ in good}:
            found = certificate_rows(tx.conn, issuer, [s for i, s in good if i == issuer])
            revoked_now.update((issuer, s) for s, row in found.items() if row.status == "revoked")
        rows = [r for r in rows if not (r["status"] == "good" and (r["issuer"], r["serial"]) in revoked_now)]
        if not rows:
            return []
    dialect = tx.conn.dialect.name
    insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert_fn(ocsp_responses)
    stmt = stmt.on_conflict_do_update(
        index_elements=["issuer", "serial", "hash_alg"],
        set_={name: stmt.excluded[name] for name in _REPLACED},
        where=(ocsp_responses.c.status != "revoked") | (stmt.excluded.status == "revoked"),
    )
    tx.conn.execute(stmt, rows)
    return rows
