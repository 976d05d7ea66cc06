"""Lifecycle management: the inventory, its names and sightings, discovery scans, and the notification outbox

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ca.store.tables import Id, UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


# Byte order on PostgreSQL, whatever the database's collation (the name search's ranges need it).
NAME = sa.String(255).with_variant(sa.String(255, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "inventory",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
        sa.Column("certificate_id", Id, sa.ForeignKey("certificates.id"), nullable=True, unique=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("issuer_dn", sa.String(1024), nullable=False),
        sa.Column("serial", sa.String(42), nullable=False),
        sa.Column("sans", sa.Text, nullable=False),
        sa.Column("not_before", UTCDateTime(timezone=True), nullable=False),
        sa.Column("not_after", UTCDateTime(timezone=True), nullable=False),
        sa.Column("key_algorithm", sa.String(16), nullable=False),
        sa.Column("key_size", sa.Integer, nullable=False),
        sa.Column("signature_algorithm", sa.String(64), nullable=False),
        sa.Column("is_ca", sa.Boolean, nullable=False),
        sa.Column("self_signed", sa.Boolean, nullable=False),
        sa.Column("der", sa.LargeBinary, nullable=False),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("team", sa.String(255), nullable=True),
        sa.Column("application", sa.String(255), nullable=True),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("renewal_method", sa.String(16), nullable=True),
        sa.Column("replaces_id", Id, sa.ForeignKey("inventory.id"), nullable=True),
        sa.Column("revoked_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("first_seen_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
    )
    # Measured by bench/bench_inventory.py at 1,000,000 certificates: see ca/inventory/tables.py.
    op.create_index(
        "ix_inventory_expiry", "inventory", ["not_after", "id"], postgresql_include=["revoked_at", "certificate_id"]
    )
    op.create_index("ix_inventory_owner_expiry", "inventory", ["owner", "not_after"])
    op.create_index("ix_inventory_team", "inventory", ["team"])
    op.create_index("ix_inventory_issuer_dn", "inventory", ["issuer_dn"])
    op.create_index("ix_inventory_last_seen", "inventory", ["last_seen_at"])
    op.create_index("ix_inventory_serial", "inventory", ["serial"])

    op.create_table(
        "inventory_names",
        sa.Column("inventory_id", Id, sa.ForeignKey("inventory.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", NAME, primary_key=True),
        sa.Column("reversed_name", NAME, nullable=False),
    )
    op.create_index("ix_inventory_names_name", "inventory_names", ["name"], postgresql_include=["inventory_id"])
    op.create_index(
        "ix_inventory_names_reversed", "inventory_names", ["reversed_name"], postgresql_include=["inventory_id"]
    )

    op.create_table(
        "inventory_sightings",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("inventory_id", Id, sa.ForeignKey("inventory.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("location", sa.String(512), nullable=False),
        sa.Column("first_seen", UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen", UTCDateTime(timezone=True), nullable=False),
        sa.Column("scan_id", Id, nullable=True),
        sa.UniqueConstraint("inventory_id", "location", name="uq_sightings_inventory_location"),
    )
    op.create_index("ix_sightings_location", "inventory_sightings", ["location"])

    op.create_table(
        "discovery_scans",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("targets", sa.Text, nullable=False),
        sa.Column("requested_by", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("summary", sa.Text, nullable=False),
    )
    op.create_table(
        "discovery_locations",
        sa.Column("location", sa.String(512), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("last_scan_id", Id, nullable=False),
        sa.Column("last_scanned_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("protocols", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_table(
        "discovery_findings",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("scan_id", Id, sa.ForeignKey("discovery_scans.id"), nullable=False),
        sa.Column("location", sa.String(512), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("inventory_id", Id, nullable=True),
        sa.Column("at", UTCDateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_findings_location_scan", "discovery_findings", ["location", "scan_id"])

    op.create_table(
        "notification_outbox",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(700), nullable=False, unique=True),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("inventory_id", Id, nullable=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("recipient", sa.String(512), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(255), nullable=True),
        sa.Column("claimed_until", UTCDateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("gave_up_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_outbox_due", "notification_outbox", ["delivered_at", "gave_up_at", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("notification_outbox")
    op.drop_table("discovery_findings")
    op.drop_table("discovery_locations")
    op.drop_table("discovery_scans")
    op.drop_table("inventory_sightings")
    op.drop_table("inventory_names")
    op.drop_table("inventory")
