"""EST enrolments held for approval: a retry of the same CSR finds its pending request (EST-11)

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ca.store.tables import Id, UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "est_pending",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("csr_sha256", sa.String(64), nullable=False),
        sa.Column("request_id", Id, nullable=False),
        sa.Column("requester", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("profile", "csr_sha256", name="uq_est_pending_csr"),
    )


def downgrade() -> None:
    op.drop_table("est_pending")
