"""SQLAlchemy 2 typed tables shared by the core and every protocol's state.

Protocols add their own tables (ACME accounts, orders, nonces...) to the same
`Base.metadata`, so one Alembic history migrates everything.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ca.enrollment import INVENTORY_FIELD_MAX

# SQLite has no 64-bit autoincrementing BIGINT; use INTEGER there.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes on every backend (SQLite would otherwise drop the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utc_value(value: Any) -> dt.datetime | None:
    """A time computed in SQL (max(), coalesce()) loses its column's type, so SQLite hands it
    back naive, as text or a datetime; this reads it as UTCDateTime would have."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    pass


def core_metadata() -> MetaData:
    """`Base.metadata` with every core table declared on it. The revocation, CA registry, inventory
    and notification tables live beside the code that uses them (ca/revocation/tables.py,
    ca/authorities/tables.py, ca/inventory/tables.py, ca/notices/tables.py, ca/operators/tables.py); whoever
    needs the whole schema (migrations, `tetra db copy`, `tetra init`) asks here, so none is missed.
    Protocol tables are declared by importing protocols.registry, which ca/ may not do."""
    import ca.authorities.tables
    import ca.inventory.tables
    import ca.notices.tables
    import ca.operators.tables
    import ca.revocation.tables  # noqa: F401  (one import of the package declares both)

    return Base.metadata


def table_of(row: type[Base]) -> Table:
    """The Core `Table` behind a mapped class: the SQL here is written against tables, and
    ``__table__`` is typed as a mere FromClause."""
    table = row.__table__
    assert isinstance(table, Table)
    return table


class CertificateRow(Base):
    """One certificate, from the intent to sign (status 'signing') to revocation.

    The row is written with the exact to-be-signed bytes before the key signs,
    so a crash after signing never leaves a signature without a record.
    """

    __tablename__ = "certificates"
    __table_args__ = (
        UniqueConstraint("issuer", "serial", name="uq_certificates_issuer_serial"),
        Index("ix_certificates_not_after", "not_after"),
        Index("ix_certificates_status", "status"),
        Index("ix_certificates_profile", "profile"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    issuer: Mapped[str] = mapped_column(String(64))
    serial: Mapped[str] = mapped_column(String(42))  # lowercase hex, no leading zeros
    status: Mapped[str] = mapped_column(String(16))  # signing | issued | failed | revoked
    subject: Mapped[str] = mapped_column(Text)
    sans: Mapped[str] = mapped_column(Text)  # JSON array of "type:value"
    not_before: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    key_algorithm: Mapped[str] = mapped_column(String(16))
    key_size: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str | None] = mapped_column(String(64), index=True)  # SHA-256 of DER
    profile: Mapped[str] = mapped_column(String(64))
    protocol: Mapped[str] = mapped_column(String(16))
    requester: Mapped[str] = mapped_column(String(255))
    tbs: Mapped[bytes] = mapped_column(LargeBinary)
    der: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    issued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revocation_reason: Mapped[str | None] = mapped_column(String(32))
    invalidity_date: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    replaces_id: Mapped[int | None] = mapped_column(Id, ForeignKey("certificates.id"))
    request_id: Mapped[int | None] = mapped_column(Id)
    owner: Mapped[str | None] = mapped_column(String(INVENTORY_FIELD_MAX))
    team: Mapped[str | None] = mapped_column(String(INVENTORY_FIELD_MAX))
    application: Mapped[str | None] = mapped_column(String(INVENTORY_FIELD_MAX))
    location: Mapped[str | None] = mapped_column(String(INVENTORY_FIELD_MAX))


class EnrollmentRequestRow(Base):
    """A request waiting for an operator (pending), or decided (approved, rejected)."""

    __tablename__ = "enrollment_requests"
    __table_args__ = (
        UniqueConstraint("protocol", "transaction_id", name="uq_requests_protocol_transaction"),
        Index("ix_requests_status", "status"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    status: Mapped[str] = mapped_column(String(16))  # pending | approved | rejected
    protocol: Mapped[str] = mapped_column(String(16))
    profile: Mapped[str] = mapped_column(String(64))
    transaction_id: Mapped[str | None] = mapped_column(String(255))
    requester: Mapped[str] = mapped_column(String(255))
    request: Mapped[str] = mapped_column(Text)  # JSON: the EnrollmentRequest, replayable
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # SubjectPublicKeyInfo DER
    raw_request: Mapped[bytes] = mapped_column(LargeBinary)
    subject: Mapped[str] = mapped_column(Text)
    sans: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(255))
    decision_note: Mapped[str | None] = mapped_column(Text)
    team: Mapped[str | None] = mapped_column(
        String(INVENTORY_FIELD_MAX)
    )  # whose request: team-bound users see their teams' only
    certificate_id: Mapped[int | None] = mapped_column(Id, ForeignKey("certificates.id"))


class AuditEventRow(Base):
    """Append-only, sequence-numbered, hash-chained audit log."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255))
    details: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(Base):
    """The chain's head: one row, locked by each writer so sequence numbers never gap or fork."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Id)
    hash: Mapped[str] = mapped_column(String(64))


class CredentialRow(Base):
    """A protocol credential: EST user, SCEP challenge, CMP shared secret, ACME EAB key.

    Passwords and challenges are kept as salted hashes; MAC keys (CMP, EAB) must
    be usable by the server, so they are kept as given.
    """

    __tablename__ = "credentials"
    __table_args__ = (UniqueConstraint("protocol", "key_id", name="uq_credentials_protocol_key"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    protocol: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))  # password | challenge | mac-key
    key_id: Mapped[str] = mapped_column(String(255))
    secret_hash: Mapped[str | None] = mapped_column(String(255))
    secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    profile: Mapped[str | None] = mapped_column(String(64))
    identities: Mapped[str] = mapped_column(Text, default="[]")  # JSON array of "type:value"
    one_time: Mapped[bool] = mapped_column(Boolean, default=False)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    bound_to: Mapped[str | None] = mapped_column(String(255))
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class CounterRow(Base):
    """Monotonic counters shared by all processes (CRL numbers, per issuer)."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class LeaseRow(Base):
    """Who runs a periodic job now, when several processes share the database."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class RateLimitRow(Base):
    """One rate-limit bucket shared by all processes (ACME-25), kept as GCRA: `tat` is the
    theoretical arrival time, the moment the bucket would be full again. A row whose `tat` has
    passed means the same as no row, so the sweeper may delete it."""

    __tablename__ = "rate_limits"
    __table_args__ = (Index("ix_rate_limits_tat", "tat"),)

    key: Mapped[str] = mapped_column(String(320), primary_key=True)  # "acme:account:12", "acme:domain:example.com"
    tat: Mapped[float] = mapped_column(Double)  # epoch seconds
    step_seconds: Mapped[float] = mapped_column(Double)  # seconds one request adds: window / limit
    window_seconds: Mapped[float] = mapped_column(Double)  # seconds the bucket spans (limit x step)
    updated_at: Mapped[float] = mapped_column(Double)  # epoch seconds of the last request counted or refused


certificates = table_of(CertificateRow)
enrollment_requests = table_of(EnrollmentRequestRow)
audit_log = table_of(AuditEventRow)
audit_head = table_of(AuditHeadRow)
credentials = table_of(CredentialRow)
counters = table_of(CounterRow)
leases = table_of(LeaseRow)
rate_limits = table_of(RateLimitRow)
