"""ACME state: accounts, orders, authorizations, challenges, nonces, renew-now requests

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ca.store.tables import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "acme_accounts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("thumbprint", sa.String(64), nullable=False),
        sa.Column("jwk", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("contact", sa.Text(), nullable=False),
        sa.Column("tos_agreed", sa.Boolean(), nullable=False),
        sa.Column("eab_key_id", sa.String(255), nullable=True),
        sa.Column("eab_profile", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("remote", sa.String(64), nullable=False),
        sa.UniqueConstraint("thumbprint"),
    )
    op.create_table(
        "acme_orders",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("account_id", Id, sa.ForeignKey("acme_accounts.id"), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("identifiers", sa.Text(), nullable=False),
        sa.Column("authz_ids", sa.Text(), nullable=False),
        sa.Column("not_before", UTCDateTime(timezone=True), nullable=True),
        sa.Column("not_after", UTCDateTime(timezone=True), nullable=True),
        sa.Column("replaces", sa.String(255), nullable=True),
        sa.Column("replaces_cert_id", Id, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("certificate_id", Id, sa.ForeignKey("certificates.id"), nullable=True),
        sa.Column("request_id", Id, nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("processing_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("csr_key", sa.String(64), nullable=True),
    )
    op.create_index("ix_acme_orders_account", "acme_orders", ["account_id"])
    op.create_index("ix_acme_orders_replaces", "acme_orders", ["replaces_cert_id"])
    op.create_index("ix_acme_orders_certificate", "acme_orders", ["certificate_id"])
    op.create_table(
        "acme_authzs",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("account_id", Id, sa.ForeignKey("acme_accounts.id"), nullable=False),
        sa.Column("identifier_type", sa.String(8), nullable=False),
        sa.Column("identifier_value", sa.String(255), nullable=False),
        sa.Column("wildcard", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("validated_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("method", sa.String(16), nullable=True),
    )
    op.create_index("ix_acme_authzs_reuse", "acme_authzs", ["account_id", "identifier_value", "status"])
    op.create_table(
        "acme_challenges",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("authz_id", Id, sa.ForeignKey("acme_authzs.id"), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("validated_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_acme_challenges_authz", "acme_challenges", ["authz_id"])
    op.create_table(
        "acme_nonces",
        sa.Column("value", sa.String(43), primary_key=True),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_acme_nonces_expires", "acme_nonces", ["expires_at"])
    op.create_table(
        "acme_renew_now",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
    )
    op.create_index("ix_acme_renew_now_scope", "acme_renew_now", ["scope", "value"])


def downgrade() -> None:
    op.drop_index("ix_acme_renew_now_scope", table_name="acme_renew_now")
    op.drop_table("acme_renew_now")
    op.drop_index("ix_acme_nonces_expires", table_name="acme_nonces")
    op.drop_table("acme_nonces")
    op.drop_index("ix_acme_challenges_authz", table_name="acme_challenges")
    op.drop_table("acme_challenges")
    op.drop_index("ix_acme_authzs_reuse", table_name="acme_authzs")
    op.drop_table("acme_authzs")
    op.drop_index("ix_acme_orders_certificate", table_name="acme_orders")
    op.drop_index("ix_acme_orders_replaces", table_name="acme_orders")
    op.drop_index("ix_acme_orders_account", table_name="acme_orders")
    op.drop_table("acme_orders")
    op.drop_table("acme_accounts")
