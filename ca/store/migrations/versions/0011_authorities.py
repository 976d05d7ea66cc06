"""The CA registry: CA certificate generations, their keys, activation and revocation (CAL-01..06)

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ca.store.tables import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "authorities",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("family", sa.String(64), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("parent", sa.String(64), nullable=True),
        sa.Column("der", sa.LargeBinary, nullable=True),
        sa.Column("chain", sa.LargeBinary, nullable=True),
        sa.Column("signer", sa.Text, nullable=True),
        sa.Column("links", sa.LargeBinary, nullable=True),
        sa.Column("activate_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("revocation_reason", sa.String(32), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_authorities_family", "authorities", ["family"])


def downgrade() -> None:
    op.drop_index("ix_authorities_family", "authorities")
    op.drop_table("authorities")
