"""Writing certificates into the inventory, inside a caller's transaction.

A certificate is one row whatever its source (CLM-01): the fingerprint is unique, so a second
import, a discovery of something Tetra issued, or two scans at once all land on the same row.
Every write here is an INSERT .. ON CONFLICT, which both SQLite and PostgreSQL do atomically, so
concurrent writers never race on a read-then-insert.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ca.inventory.facts import CertificateFacts
from ca.inventory.model import Source
from ca.inventory.tables import inventory, inventory_names, sightings


@dataclass(frozen=True)
class Placed:
    id: int
    fingerprint: str
    created: bool


def dialect_insert(conn: Connection, table: Any) -> postgresql.Insert | sqlite.Insert:
    """INSERT with ON CONFLICT, which the two backends spell the same way."""
    return postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)


def row_values(facts: CertificateFacts, source: Source, now: dt.datetime, **extra: Any) -> dict[str, Any]:
    return {
        "fingerprint": facts.fingerprint,
        "source": source.value,
        "subject": facts.subject,
        "issuer_dn": facts.issuer_dn[:1024],
        "serial": facts.serial[:42],
        "sans": json.dumps(list(facts.sans)),
        "not_before": facts.not_before,
        "not_after": facts.not_after,
        "key_algorithm": facts.key_algorithm,
        "key_size": facts.key_size,
        "signature_algorithm": facts.signature_algorithm[:64],
        "is_ca": facts.is_ca,
        "self_signed": facts.self_signed,
        "der": facts.der,
        "owner": None,
        "team": None,
        "application": None,
        "tags": "[]",
        "renewal_method": None,
        "replaces_id": None,
        "certificate_id": None,
        "revoked_at": None,
        "first_seen_at": None,
        "last_seen_at": None,
        "created_at": now,
        "updated_at": now,
    } | extra


def place(conn: Connection, facts: CertificateFacts, values: dict[str, Any]) -> Placed:
    """The row for ``facts``: inserted with ``values``, or the existing one (left unchanged)."""
    inserted = conn.execute(
        dialect_insert(conn, inventory)
        .values(values)
        .on_conflict_do_nothing(index_elements=["fingerprint"])
        .returning(inventory.c.id)
    ).scalar()
    if inserted is not None:
        add_names(conn, int(inserted), facts.names)
        return Placed(int(inserted), facts.fingerprint, True)
    existing = conn.execute(select(inventory.c.id).where(inventory.c.fingerprint == facts.fingerprint)).scalar_one()
    return Placed(int(existing), facts.fingerprint, False)


def add_names(conn: Connection, inventory_id: int, names: Sequence[str]) -> None:
    if names:
        rows = [{"inventory_id": inventory_id, "name": n, "reversed_name": n[::-1]} for n in names]
        conn.execute(dialect_insert(conn, inventory_names).on_conflict_do_nothing(), rows)


def fill_blanks(conn: Connection, inventory_id: int, given: dict[str, Any], now: dt.datetime) -> None:
    """What a later source knows (an owner from an import, the CA ledger's link) goes into the
    fields the row has empty; what an operator set stays. Tags are added to those it has.
    None means the source did not say."""
    known: dict[str, Any] = {
        k: func.coalesce(inventory.c[k], v) for k, v in given.items() if v is not None and k != "tags"
    }
    tags = given.get("tags")
    if tags:
        current = conn.execute(select(inventory.c.tags).where(inventory.c.id == inventory_id)).scalar_one()
        known["tags"] = json.dumps(sorted(set(json.loads(current)) | set(tags)))
    if known:
        conn.execute(update(inventory).where(inventory.c.id == inventory_id).values(known | {"updated_at": now}))


def sight(
    conn: Connection, facts: CertificateFacts, *, kind: str, location: str, at: dt.datetime, scan_id: int | None
) -> Placed:
    """A certificate seen at ``location``: its row ('discovered' if it is new) and the sighting."""
    placed = place(conn, facts, row_values(facts, Source.DISCOVERED, at))
    record_sighting(conn, placed.id, kind=kind, location=location, at=at, scan_id=scan_id)
    return placed


def record_sighting(
    conn: Connection, inventory_id: int, *, kind: str, location: str, at: dt.datetime, scan_id: int | None
) -> None:
    """One more sighting at ``location``: first_seen kept, last_seen moved on (CLM-01)."""
    statement = dialect_insert(conn, sightings).values(
        inventory_id=inventory_id, kind=kind, location=location, first_seen=at, last_seen=at, scan_id=scan_id
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["inventory_id", "location"],
            set_={"last_seen": at, "scan_id": scan_id},
        )
    )
    row = inventory.c
    conn.execute(
        update(inventory)
        .where(row.id == inventory_id)
        .values(
            first_seen_at=case((row.first_seen_at > at, at), else_=func.coalesce(row.first_seen_at, at)),
            last_seen_at=case((row.last_seen_at > at, row.last_seen_at), else_=at),
        )
    )
