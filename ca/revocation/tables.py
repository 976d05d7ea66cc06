"""Revocation state on the shared metadata: pre-signed OCSP responses, responder
certificates, CRLs with their numbers, CRL partition layout and job cursors.

Every table here is created by migration 0002; keep the two in step.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ca.store.tables import Base, Id, UTCDateTime, audit_log, table_of


class OcspResponseRow(Base):
    """One pre-signed OCSPResponse (DER) per certificate and CertID hash algorithm.

    A row is never turned from 'revoked' back to 'good' (the upsert guards it), so a
    late refresh can not undo a revocation written by another process.
    """

    __tablename__ = "ocsp_responses"
    __table_args__ = (
        UniqueConstraint("issuer", "serial", "hash_alg", name="uq_ocsp_responses_cert"),
        Index("ix_ocsp_responses_this_update", "this_update"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    issuer: Mapped[str] = mapped_column(String(64))
    serial: Mapped[str] = mapped_column(String(42))  # as in certificates.serial
    hash_alg: Mapped[str] = mapped_column(String(8))  # CertID hash: sha1 | sha256 | sha384 | sha512
    status: Mapped[str] = mapped_column(String(8))  # good | revoked
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revocation_reason: Mapped[str | None] = mapped_column(String(32))
    cert_not_after: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    this_update: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    next_update: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    produced_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class OcspResponderRow(Base):
    """A delegated responder certificate (RFC 6960 §4.2.2.2) and the key it certifies."""

    __tablename__ = "ocsp_responders"
    __table_args__ = (Index("ix_ocsp_responders_issuer_key", "issuer", "key_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    issuer: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(64))  # SHA-256 of the SubjectPublicKeyInfo, hex
    certificate_id: Mapped[int] = mapped_column(Id, ForeignKey("certificates.id"))
    der: Mapped[bytes] = mapped_column(LargeBinary)
    not_before: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class CrlRow(Base):
    """One CRL, from the number reserved ('building') to the signed DER ('published').

    The number is reserved before signing, like a certificate's serial: a crash in
    between leaves a 'building' row and the number is never used again (ST-14). The exact
    bytes to be signed are stored on that row before the key is asked (SEC-04).
    """

    __tablename__ = "crls"
    __table_args__ = (
        UniqueConstraint("issuer", "number", name="uq_crls_issuer_number"),
        Index("ix_crls_latest", "issuer", "scope", "kind", "status", "number"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    issuer: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(16))  # "full" or "part-<n>"
    kind: Mapped[str] = mapped_column(String(8))  # complete | delta
    number: Mapped[int] = mapped_column(BigInteger)
    base_number: Mapped[int | None] = mapped_column(BigInteger)  # deltas: the complete CRL they extend
    status: Mapped[str] = mapped_column(String(12))  # building | published | failed
    watermark: Mapped[int] = mapped_column(BigInteger)  # audit seq: revocations up to here are listed
    entries: Mapped[int] = mapped_column(Integer)
    this_update: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    next_update: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # The TBSCertList, stored before the CA key signs it (SEC-04); dropped once the DER holds it.
    tbs: Mapped[bytes | None] = mapped_column(LargeBinary)
    der: Mapped[bytes | None] = mapped_column(LargeBinary)
    sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class CrlLayoutRow(Base):
    """How many partitions an issuer's CRL has; fixed at first use because every
    certificate's CRL distribution point names its partition (RFC 5280 §5.2.5)."""

    __tablename__ = "crl_layout"

    issuer: Mapped[str] = mapped_column(String(64), primary_key=True)
    partitions: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class JobCursorRow(Base):
    """How far a job has read the audit log, so a restarted leader resumes, not skips."""

    __tablename__ = "job_cursors"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


# The revocation and issuance feed reads audit events by action and sequence number.
AUDIT_ACTION_SEQ = Index("ix_audit_log_action_seq", audit_log.c.action, audit_log.c.seq)


ocsp_responses = table_of(OcspResponseRow)
ocsp_responders = table_of(OcspResponderRow)
crls = table_of(CrlRow)
crl_layout = table_of(CrlLayoutRow)
job_cursors = table_of(JobCursorRow)
