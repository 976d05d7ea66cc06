"""CRL intents keep their to-be-signed bytes (SEC-04: the CA key signs only recorded TBS data)

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("crls", sa.Column("tbs", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("crls") as batch:
        batch.drop_column("tbs")
