"""ACME challenges record when their validation started and how often: a validation cut short by
a crash is resumed or failed by the challenge sweeper instead of staying "processing" (ST-19)

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ca.store.tables import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("acme_challenges", sa.Column("processing_at", UTCDateTime(timezone=True), nullable=True))
    op.add_column("acme_challenges", sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_acme_challenges_status", "acme_challenges", ["status", "processing_at"])


def downgrade() -> None:
    op.drop_index("ix_acme_challenges_status", table_name="acme_challenges")
    with op.batch_alter_table("acme_challenges") as batch:
        batch.drop_column("attempts")
        batch.drop_column("processing_at")
