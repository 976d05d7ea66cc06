"""The inventory's tables: certificates, their names, where they were seen, and discovery scans.

Names get a table of their own (``inventory_names``) so that a search by SAN over millions of
certificates is an index range scan: each name is stored as given and reversed, and a search for
``example.com`` reads the reversed index from ``moc.elpmaxe`` up, which finds the name itself and
every name under it without a LIKE that no plain index serves.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ca.enrollment import INVENTORY_FIELD_MAX
from ca.store.tables import Base, Id, UTCDateTime, table_of

LOCATION_MAX = 512  # "host:port" or a file path
# Names compare byte by byte, as the search's ranges assume ("moc.elpmaxe." up to the next
# character): a PostgreSQL database created with a linguistic collation (en_US.UTF-8) would
# otherwise order and compare them by language rules and miss names.
NameText = String(255).with_variant(String(255, collation="C"), "postgresql")


class InventoryRow(Base):
    """One certificate, whatever its source; columns a filter uses are indexed."""

    __tablename__ = "inventory"
    __table_args__ = (
        # Expiry in the order a page by expiry is read (not_after, id), carrying what the
        # revocation test and the ledger join need, so that a count of expiring certificates is an
        # index-only scan. Owner with expiry: "owner X, expiring within N days" is one range.
        Index("ix_inventory_expiry", "not_after", "id", postgresql_include=["revoked_at", "certificate_id"]),
        Index("ix_inventory_owner_expiry", "owner", "not_after"),
        Index("ix_inventory_team", "team"),
        Index("ix_inventory_issuer_dn", "issuer_dn"),
        Index("ix_inventory_last_seen", "last_seen_at"),
        Index("ix_inventory_serial", "serial"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of the DER, hex
    certificate_id: Mapped[int | None] = mapped_column(Id, ForeignKey("certificates.id"), unique=True)
    source: Mapped[str] = mapped_column(String(16))  # tetra | imported | discovered (model.Source)
    subject: Mapped[str] = mapped_column(Text)
    issuer_dn: Mapped[str] = mapped_column(String(1024))
    serial: Mapped[str] = mapped_column(String(42))  # lowercase hex
    sans: Mapped[str] = mapped_column(Text)  # JSON array of "type:value", as in ``certificates``
    not_before: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    key_algorithm: Mapped[str] = mapped_column(String(16))
    key_size: Mapped[int] = mapped_column(Integer)
    signature_algorithm: Mapped[str] = mapped_column(String(64))
    is_ca: Mapped[bool] = mapped_column(Boolean)
    self_signed: Mapped[bool] = mapped_column(Boolean)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    owner: Mapped[str | None] = mapped_column(String(INVENTORY_FIELD_MAX))
    team: Mapped[str | None] = mapped_column(String(INVENTORY_FIELD_MAX))
    application: Mapped[str | None] = mapped_column(String(INVENTORY_FIELD_MAX))
    tags: Mapped[str] = mapped_column(Text)  # JSON array of strings
    renewal_method: Mapped[str | None] = mapped_column(String(16))  # acme | est | scep | cmp | manual
    replaces_id: Mapped[int | None] = mapped_column(Id, ForeignKey("inventory.id"))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # known revoked (import, Tetra)
    first_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # deployed: first sighting
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # deployed: latest sighting
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class InventoryNameRow(Base):
    """One name (SAN value, or the subject CN when there are no SANs) of one certificate, lowercased."""

    __tablename__ = "inventory_names"
    __table_args__ = (
        # Each carries the id, so that a search by name reads the index alone (index-only scan).
        Index("ix_inventory_names_name", "name", postgresql_include=["inventory_id"]),
        Index("ix_inventory_names_reversed", "reversed_name", postgresql_include=["inventory_id"]),
    )

    inventory_id: Mapped[int] = mapped_column(Id, ForeignKey("inventory.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(NameText, primary_key=True)
    reversed_name: Mapped[str] = mapped_column(NameText)


class SightingRow(Base):
    """Where one certificate was seen: an endpoint ("host:port") or a file path."""

    __tablename__ = "inventory_sightings"
    __table_args__ = (
        UniqueConstraint("inventory_id", "location", name="uq_sightings_inventory_location"),
        Index("ix_sightings_location", "location"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    inventory_id: Mapped[int] = mapped_column(Id, ForeignKey("inventory.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # endpoint | file
    location: Mapped[str] = mapped_column(String(LOCATION_MAX))
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    scan_id: Mapped[int | None] = mapped_column(Id)  # the scan that saw it last


class ScanRow(Base):
    """One discovery scan, on demand or scheduled."""

    __tablename__ = "discovery_scans"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # network | files
    targets: Mapped[str] = mapped_column(Text)  # JSON: what it was given
    requested_by: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))  # running | done | failed
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    summary: Mapped[str] = mapped_column(Text)  # JSON counts, written when it ends
    team: Mapped[str | None] = mapped_column(String(INVENTORY_FIELD_MAX))  # the team it was run for, if any


class LocationRow(Base):
    """The latest scan of each endpoint or file: its findings are those of that scan."""

    __tablename__ = "discovery_locations"

    location: Mapped[str] = mapped_column(String(LOCATION_MAX), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # endpoint | file
    last_scan_id: Mapped[int] = mapped_column(Id)
    last_scanned_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    protocols: Mapped[str] = mapped_column(Text)  # JSON array: TLS versions accepted
    error: Mapped[str | None] = mapped_column(Text)  # why nothing was read there, if so


class FindingRow(Base):
    """A problem a scan saw at a location (weak protocol, expired leaf, hostname mismatch...)."""

    __tablename__ = "discovery_findings"
    __table_args__ = (Index("ix_findings_location_scan", "location", "scan_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    scan_id: Mapped[int] = mapped_column(Id, ForeignKey("discovery_scans.id"))
    location: Mapped[str] = mapped_column(String(LOCATION_MAX))
    code: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))  # critical | warning | info
    detail: Mapped[str] = mapped_column(Text)
    inventory_id: Mapped[int | None] = mapped_column(Id)  # the leaf it concerns, when there is one
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


inventory = table_of(InventoryRow)
inventory_names = table_of(InventoryNameRow)
sightings = table_of(SightingRow)
discovery_scans = table_of(ScanRow)
discovery_locations = table_of(LocationRow)
discovery_findings = table_of(FindingRow)
