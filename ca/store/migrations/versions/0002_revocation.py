"""revocation state: OCSP responses and responders, CRLs, CRL layout, job cursors

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ca.store.tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _utc() -> ca.store.tables.UTCDateTime:
    return ca.store.tables.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ocsp_responses",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("issuer", sa.String(length=64), nullable=False),
        sa.Column("serial", sa.String(length=42), nullable=False),
        sa.Column("hash_alg", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("revoked_at", _utc(), nullable=True),
        sa.Column("revocation_reason", sa.String(length=32), nullable=True),
        sa.Column("cert_not_after", _utc(), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("this_update", _utc(), nullable=False),
        sa.Column("next_update", _utc(), nullable=False),
        sa.Column("produced_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("issuer", "serial", "hash_alg", name="uq_ocsp_responses_cert"),
    )
    op.create_index("ix_ocsp_responses_this_update", "ocsp_responses", ["this_update"], unique=False)

    op.create_table(
        "ocsp_responders",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("issuer", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("certificate_id", _ID, nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("not_before", _utc(), nullable=False),
        sa.Column("not_after", _utc(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(["certificate_id"], ["certificates.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ocsp_responders_issuer_key", "ocsp_responders", ["issuer", "key_id"], unique=False)

    op.create_table(
        "crls",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("issuer", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("base_number", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("watermark", sa.BigInteger(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("this_update", _utc(), nullable=False),
        sa.Column("next_update", _utc(), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("published_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("issuer", "number", name="uq_crls_issuer_number"),
    )
    op.create_index("ix_crls_latest", "crls", ["issuer", "scope", "kind", "status", "number"], unique=False)

    op.create_table(
        "crl_layout",
        sa.Column("issuer", sa.String(length=64), nullable=False),
        sa.Column("partitions", sa.Integer(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("issuer"),
    )
    op.create_table(
        "job_cursors",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    # The revocation/issuance feed (OCSP cache invalidation, delta CRLs) reads the audit
    # log by action and sequence number.
    op.create_index("ix_audit_log_action_seq", "audit_log", ["action", "seq"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_audit_log_action_seq", table_name="audit_log")
    op.drop_table("job_cursors")
    op.drop_table("crl_layout")
    op.drop_index("ix_crls_latest", table_name="crls")
    op.drop_table("crls")
    op.drop_index("ix_ocsp_responders_issuer_key", table_name="ocsp_responders")
    op.drop_table("ocsp_responders")
    op.drop_index("ix_ocsp_responses_this_update", table_name="ocsp_responses")
    op.drop_table("ocsp_responses")
