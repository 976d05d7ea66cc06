"""Mirroring what Tetra issued into the inventory.

The CA's ledger (``certificates``) is written on the issuance path; the inventory is not, so
issuing stays as fast as before and an inventory fault can never fail an enrolment. Instead this
copies issued certificates across in batches, from a watermark kept in ``counters``: every row at
or below it is settled. A row still 'signing' holds the watermark back (it may yet be issued), so
nothing is ever skipped; the rows after it are copied anyway and copied again harmlessly (the
fingerprint is unique) until it settles. Revocations need no copying: reads join the ledger.

Runs from the server's jobs, and before every inventory command, report and notification pass,
so whatever reads the inventory sees what was issued up to that moment.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from cryptography import x509
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from ca.inventory.facts import CertificateFacts, facts_of
from ca.inventory.model import OWN_TAG, Source
from ca.inventory.tables import inventory
from ca.inventory.upsert import dialect_insert, fill_blanks, place, row_values
from ca.store.db import Tx
from ca.store.tables import certificates, counters

WATERMARK = "inventory:synced-through"
BATCH = 2000
_RENEWAL_BY_PROTOCOL = {"acme": "acme", "est": "est", "scep": "scep", "cmp": "cmp"}


def sync_batch(tx: Tx, now: dt.datetime) -> int:
    """Copy one batch; returns how many ledger rows it looked at (0: caught up)."""
    conn = tx.conn
    mark = _watermark(conn)
    c = certificates.c
    rows = conn.execute(
        select(c.id, c.status, c.der, c.owner, c.team, c.application, c.protocol, c.replaces_id)
        .where(c.id > mark)
        .order_by(c.id)
        .limit(BATCH)
    ).all()
    settled_through = mark
    held = False
    for row in rows:
        if row.status == "signing":
            held = True
        elif not held:
            settled_through = row.id
        if row.status in ("issued", "revoked") and row.der is not None:
            _mirror(conn, row, now)
    if settled_through > mark:
        statement = dialect_insert(conn, counters).values(name=WATERMARK, value=settled_through)
        conn.execute(statement.on_conflict_do_update(index_elements=["name"], set_={"value": settled_through}))
    return len(rows)


def _mirror(conn: Connection, row: Any, now: dt.datetime) -> None:
    facts = facts_of(x509.load_der_x509_certificate(row.der))
    known = {
        "certificate_id": row.id,
        "owner": row.owner,
        "team": row.team,
        "application": row.application,
        "renewal_method": _RENEWAL_BY_PROTOCOL.get(row.protocol, "manual"),
        "replaces_id": _inventory_id_of(conn, row.replaces_id),
    }
    placed = place(conn, facts, row_values(facts, Source.TETRA, now, **known))
    if not placed.created:
        # Seen by a scan or imported before it was mirrored: the same record (CLM-01), now linked
        # to the ledger and known as Tetra's own; what an operator set on it stays.
        fill_blanks(conn, placed.id, known, now)
        conn.execute(update(inventory).where(inventory.c.id == placed.id).values(source=Source.TETRA.value))


def place_own_ca(conn: Connection, facts: CertificateFacts, now: dt.datetime) -> None:
    """One of the CA's own certificates (a root, a CA generation, an RA), which the ledger does
    not hold: Tetra's, tagged so, whoever saw it first."""
    known = {"renewal_method": "manual", "tags": (OWN_TAG,)}
    values = row_values(facts, Source.TETRA, now, renewal_method="manual", tags=json.dumps([OWN_TAG]))
    placed = place(conn, facts, values)
    if not placed.created:
        fill_blanks(conn, placed.id, known, now)


def _inventory_id_of(conn: Connection, certificate_id: int | None) -> int | None:
    if certificate_id is None:
        return None
    found = conn.execute(select(inventory.c.id).where(inventory.c.certificate_id == certificate_id)).scalar()
    return int(found) if found is not None else None


def _watermark(conn: Connection) -> int:
    value = conn.execute(select(counters.c.value).where(counters.c.name == WATERMARK)).scalar()
    return int(value) if value is not None else 0
