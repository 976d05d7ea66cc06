"""CMP transactions: nonces, the certificate issued and its certConf deadline (CMP-05, CMP-06, CMP-13)

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ca.store.tables import Id, UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cmp_transactions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("transaction_id", sa.String(128), nullable=False),
        sa.Column("body_type", sa.String(16), nullable=False),
        sa.Column("cert_req_id", sa.Integer, nullable=False),
        sa.Column("spki_sha256", sa.String(64), nullable=False),
        sa.Column("requester", sa.String(255), nullable=False),
        sa.Column("their_nonce", sa.String(128), nullable=False),
        sa.Column("our_nonce", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("request_id", Id, nullable=True),
        sa.Column("certificate_id", Id, nullable=True),
        sa.Column("confirm_by", UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("profile", "transaction_id", name="uq_cmp_transactions_id"),
    )
    op.create_index("ix_cmp_transactions_overdue", "cmp_transactions", ["state", "confirm_by"])


def downgrade() -> None:
    op.drop_index("ix_cmp_transactions_overdue", "cmp_transactions")
    op.drop_table("cmp_transactions")
