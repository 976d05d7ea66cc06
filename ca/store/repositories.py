"""Async repositories over the core's tables. SQL lives here, nowhere else in the core."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, case, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from ca.audit import AuditEvent, AuditFilter, ChainReport, LoggedEvent, read_events, verify_chain
from ca.records import CertificateRecord, RequestRecord
from ca.store.db import Database, Slot, Tx
from ca.store.tables import audit_log, certificates, counters, enrollment_requests


@dataclass(frozen=True)
class CertificateFilter:
    issuer: str | None = None
    status: str | None = None
    profile: str | None = None
    protocol: str | None = None
    expiring_before: dt.datetime | None = None
    limit: int = 1000
    # Keyset paging: rows come in id order, so the next page starts after the last id shown.
    after_id: int | None = None


def certificate_record(row: Row[Any]) -> CertificateRecord:
    values = dict(row._mapping)
    values["serial"] = int(values["serial"], 16)
    values["sans"] = tuple(json.loads(values["sans"]))
    return CertificateRecord(**values)


def request_record(row: Row[Any]) -> RequestRecord:
    values = dict(row._mapping)
    values["request"] = json.loads(values["request"])
    values["sans"] = tuple(json.loads(values["sans"]))
    return RequestRecord(**values)


def serial_text(serial: int) -> str:
    return format(serial, "x")


# Built once: the issuance hot path only binds parameters (no per-call statement compilation).
_INSERT_INTENT = insert(certificates).returning(certificates.c.id, sort_by_parameter_order=True)
_RESULT_COLUMNS = ("status", "der", "fingerprint", "issued_at")
# The status moves only from 'signing': a revocation accepted while the key was signing
# (an operator revoking the in-flight serial) is never undone by the result.
_RECORD_RESULT = (
    update(certificates)
    .where(certificates.c.id == bindparam("row_id_"))
    .values(
        {name: bindparam(name) for name in _RESULT_COLUMNS}
        | {"status": case((certificates.c.status == "signing", bindparam("status")), else_=certificates.c.status)}
    )
)
# An approved request pointed at its certificate, in the transaction that records the result.
_LINK_CERTIFICATE = (
    update(enrollment_requests)
    .where(enrollment_requests.c.id == bindparam("request_id_"))
    .values(certificate_id=bindparam("certificate_id"))
)


class CertificateRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # Writes used inside the issuer's grouped transactions -------------------------------
    @staticmethod
    def insert_intent(tx: Tx, values: dict[str, Any], event: AuditEvent) -> Slot[int]:
        """Queue the intent row; its id is known once the shared transaction flushes."""
        tx.audit(event)
        return tx.insert_returning_id(_INSERT_INTENT, values)

    @staticmethod
    def record_result(tx: Tx, row_id: int, values: dict[str, Any], event: AuditEvent) -> None:
        """status plus, for an issued certificate, der/fingerprint/issued_at (None otherwise)."""
        params = {name: values.get(name) for name in _RESULT_COLUMNS}
        params["row_id_"] = row_id
        tx.execute_many(_RECORD_RESULT, params)
        tx.audit(event)

    # Reads -------------------------------------------------------------------------------
    async def get(self, row_id: int) -> CertificateRecord | None:
        query = select(certificates).where(certificates.c.id == row_id)
        return await self.db.read_first(query, certificate_record)

    async def by_serial(self, issuer: str, serial: int) -> CertificateRecord | None:
        query = select(certificates).where(
            certificates.c.issuer == issuer, certificates.c.serial == serial_text(serial)
        )
        return await self.db.read_first(query, certificate_record)

    async def by_serial_any_issuer(self, serial: int) -> list[CertificateRecord]:
        def q(conn: Connection) -> list[CertificateRecord]:
            rows = conn.execute(select(certificates).where(certificates.c.serial == serial_text(serial)))
            return [certificate_record(r) for r in rows]

        return await self.db.read(q)

    async def by_fingerprint(self, fingerprint: str) -> CertificateRecord | None:
        query = select(certificates).where(certificates.c.fingerprint == fingerprint)
        return await self.db.read_first(query, certificate_record)

    async def stale_intents(self, created_before: dt.datetime, limit: int) -> list[CertificateRecord]:
        """Rows still 'signing' that were written before `created_before`, oldest first: intents
        whose issuance ended without a result (ca/recovery.py settles them)."""

        def q(conn: Connection) -> list[CertificateRecord]:
            rows = conn.execute(
                select(certificates)
                .where(certificates.c.status == "signing", certificates.c.created_at < created_before)
                .order_by(certificates.c.id)
                .limit(limit)
            )
            return [certificate_record(r) for r in rows]

        return await self.db.read(q)

    async def settle_intent(self, row_id: int, values: dict[str, Any], event: AuditEvent) -> bool:
        """Move a row that is still 'signing' to its outcome (issued with its DER, or revoked),
        with its audit event; False, and nothing written, if it left 'signing' meanwhile (the
        issuing process stored its result, or an operator revoked it)."""

        def w(tx: Tx) -> bool:
            result = tx.conn.execute(
                update(certificates)
                .where(certificates.c.id == row_id, certificates.c.status == "signing")
                .values(**values)
            )
            if result.rowcount != 1:
                return False
            tx.audit(event)
            return True

        return await self.db.write(w)

    async def list(self, flt: CertificateFilter) -> list[CertificateRecord]:
        def q(conn: Connection) -> list[CertificateRecord]:
            query: Select[Any] = select(certificates).order_by(certificates.c.id)
            if flt.issuer:
                query = query.where(certificates.c.issuer == flt.issuer)
            if flt.status:
                query = query.where(certificates.c.status == flt.status)
            if flt.profile:
                query = query.where(certificates.c.profile == flt.profile)
            if flt.protocol:
                query = query.where(certificates.c.protocol == flt.protocol)
            if flt.expiring_before:
                query = query.where(certificates.c.not_after <= flt.expiring_before)
            if flt.after_id is not None:
                query = query.where(certificates.c.id > flt.after_id)
            return [certificate_record(r) for r in conn.execute(query.limit(flt.limit))]

        return await self.db.read(q)

    async def count_valid_by_issuer(self, now: dt.datetime) -> dict[str, int]:
        """Issued, unrevoked, unexpired certificates per issuer name (`tetra ca list`)."""

        def q(conn: Connection) -> dict[str, int]:
            rows = conn.execute(
                select(certificates.c.issuer, func.count())
                .where(certificates.c.status == "issued", certificates.c.not_after > now)
                .group_by(certificates.c.issuer)
            )
            return {issuer: int(n) for issuer, n in rows}

        return await self.db.read(q)

    async def count_by_status(self) -> dict[str, int]:
        def q(conn: Connection) -> dict[str, int]:
            rows = conn.execute(select(certificates.c.status, func.count()).group_by(certificates.c.status))
            return {status: int(n) for status, n in rows}

        return await self.db.read(q)

    async def revoke(
        self,
        row_id: int,
        *,
        reason: str,
        revoked_at: dt.datetime,
        invalidity_date: dt.datetime | None,
        event: AuditEvent,
    ) -> bool:
        """Mark revoked unless it already is; False if someone else revoked it first."""

        def w(tx: Tx) -> bool:
            result = tx.conn.execute(
                update(certificates)
                .where(certificates.c.id == row_id, certificates.c.status.in_(("issued", "signing")))
                .values(
                    status="revoked",
                    revoked_at=revoked_at,
                    revocation_reason=reason,
                    invalidity_date=invalidity_date,
                )
            )
            if result.rowcount != 1:
                return False
            tx.audit(event)
            return True

        return await self.db.write(w)


class RequestRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, values: dict[str, Any], event: AuditEvent) -> int:
        def w(tx: Tx) -> int:
            result = tx.conn.execute(insert(enrollment_requests).values(**values).returning(enrollment_requests.c.id))
            tx.audit(event)
            return int(result.scalar_one())

        return await self.db.write(w)

    async def get(self, request_id: int) -> RequestRecord | None:
        query = select(enrollment_requests).where(enrollment_requests.c.id == request_id)
        return await self.db.read_first(query, request_record)

    async def by_transaction(self, protocol: str, transaction_id: str) -> RequestRecord | None:
        query = select(enrollment_requests).where(
            enrollment_requests.c.protocol == protocol, enrollment_requests.c.transaction_id == transaction_id
        )
        return await self.db.read_first(query, request_record)

    async def list(
        self,
        status: str | None = None,
        limit: int = 1000,
        *,
        after_id: int | None = None,
        teams: frozenset[str] | None = None,
    ) -> list[RequestRecord]:
        """In id order; after_id pages on; teams: only those teams' requests (None: every one)."""

        def q(conn: Connection) -> list[RequestRecord]:
            query = select(enrollment_requests).order_by(enrollment_requests.c.id)
            if status:
                query = query.where(enrollment_requests.c.status == status)
            if after_id is not None:
                query = query.where(enrollment_requests.c.id > after_id)
            if teams is not None:
                query = query.where(enrollment_requests.c.team.in_(sorted(teams)))
            return [request_record(r) for r in conn.execute(query.limit(limit))]

        return await self.db.read(q)

    @staticmethod
    def decide(tx: Tx, request_id: int, values: dict[str, Any], event: AuditEvent) -> bool:
        """Move a pending request on; False if it was no longer pending (decided elsewhere)."""
        result = tx.conn.execute(
            update(enrollment_requests)
            .where(enrollment_requests.c.id == request_id, enrollment_requests.c.status == "pending")
            .values(**values)
        )
        if result.rowcount != 1:
            return False
        tx.audit(event)
        return True

    @staticmethod
    def link_certificate(request_id: int) -> Callable[[Tx, int], None]:
        """The write that points an approved request at its certificate (run with the result)."""

        def link(tx: Tx, certificate_id: int) -> None:
            tx.conn.execute(_LINK_CERTIFICATE, {"request_id_": request_id, "certificate_id": certificate_id})

        return link


class CounterRepository:
    """Strictly increasing numbers shared by every process (CRL numbers)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def next_value(tx: Tx, name: str, at_least: int = 1) -> int:
        """One upsert, so two processes creating the same counter at once cannot collide: the
        second waits on the first's row lock and then takes the next number."""
        dialect_insert = postgresql.insert if tx.conn.dialect.name == "postgresql" else sqlite.insert
        stmt = dialect_insert(counters).values(name=name, value=at_least)
        bumped = case((counters.c.value + 1 >= at_least, counters.c.value + 1), else_=at_least)
        stmt = stmt.on_conflict_do_update(index_elements=[counters.c.name], set_={"value": bumped})
        return int(tx.conn.execute(stmt.returning(counters.c.value)).scalar_one())


class AuditRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def verify(self) -> ChainReport:
        return await self.db.read(verify_chain)

    async def append(self, event: AuditEvent) -> None:
        await self.db.write(lambda tx: tx.audit(event))

    async def events(
        self, flt: AuditFilter, *, after_seq: int | None, limit: int, newest_first: bool = False
    ) -> list[LoggedEvent]:
        return await self.db.read(
            lambda conn: read_events(conn, flt, after_seq=after_seq, limit=limit, newest_first=newest_first)
        )

    async def probe(self) -> None:
        """Readiness (ST-11): issuance needs a durable write and an audit log that takes rows.
        Commits one counter bump (a full disk or a read-only store fails it) and inserts an
        audit row in a savepoint rolled back at once (a log that refuses rows fails it), so
        the log itself never changes. Raises StoreUnavailable."""

        def w(tx: Tx) -> None:
            CounterRepository.next_value(tx, "health:write-probe")
            savepoint = tx.conn.begin_nested()
            try:
                tx.conn.execute(insert(audit_log).values(_PROBE_EVENT))
            finally:
                savepoint.rollback()

        await self.db.write(w)


_PROBE_EVENT = {
    "seq": 0,  # chained events start at 1
    "at": dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
    "actor": "tetra",
    "action": "health.probe",
    "target": "",
    "details": "{}",
    "prev_hash": "",
    "hash": "",
}


__all__ = [
    "AuditRepository",
    "CertificateFilter",
    "CertificateRecord",
    "CertificateRepository",
    "CounterRepository",
    "RequestRecord",
    "RequestRepository",
]
