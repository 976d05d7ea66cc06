"""Index orders by status, so the stuck-order sweeper finds "processing" ones without a scan (ST-02)

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_acme_orders_status", "acme_orders", ["status", "id"])


def downgrade() -> None:
    op.drop_index("ix_acme_orders_status", table_name="acme_orders")
