"""SCEP transactions: a re-sent transactionID finds its certificate or pending request (SCEP-14, SCEP-17)

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ca.store.tables import Id, UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scep_transactions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("transaction_id", sa.String(256), nullable=False),
        sa.Column("spki_sha256", sa.String(64), nullable=False),
        sa.Column("request_id", Id, nullable=True),
        sa.Column("certificate_id", Id, nullable=True),
        sa.Column("requester", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("profile", "transaction_id", name="uq_scep_transactions_id"),
    )


def downgrade() -> None:
    op.drop_table("scep_transactions")
