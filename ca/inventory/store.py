"""The inventory's one door: add, sight, edit, read. Each change carries its audit event."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography import x509
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from ca.audit import AuditEvent
from ca.errors import BadRequest
from ca.inventory import queries
from ca.inventory.facts import facts_of
from ca.inventory.model import RENEWAL_METHODS, Edit, InventoryFilter, InventoryRecord, NewEntry, Sighting
from ca.inventory.sync import place_own_ca, sync_batch
from ca.inventory.tables import inventory, sightings
from ca.inventory.upsert import Placed, fill_blanks, place, row_values, sight
from ca.store.db import Database, Tx

SYNC_ROUNDS = 50  # batches per call: a first sync of a large ledger is finished over several calls


@dataclass(frozen=True)
class Seen:
    """A certificate found at a location by a scan."""

    certificate: x509.Certificate
    kind: str  # endpoint | file
    location: str


class InventoryStore:
    def __init__(self, db: Database, own_cas: Callable[[], Sequence[x509.Certificate]] = list) -> None:
        self._db = db
        self._own_cas = own_cas  # the CA's own certificates, which its ledger does not hold

    # -- writes ---------------------------------------------------------------------------
    async def sync(self, now: dt.datetime) -> int:
        """Mirror what the CA issued since the last call (ca/inventory/sync.py), and the CA's own
        certificates; returns the ledger rows looked at."""
        own = [facts_of(c) for c in self._own_cas()]

        def own_cas(tx: Tx) -> None:
            for facts in own:
                place_own_ca(tx.conn, facts, now)

        await self._db.write(own_cas)
        total = 0
        for _ in range(SYNC_ROUNDS):
            looked = await self._db.write(lambda tx: sync_batch(tx, now))
            total += looked
            if looked == 0:
                break
        return total

    async def add(self, entries: Sequence[NewEntry], *, actor: str, now: dt.datetime) -> list[Placed]:
        """Import certificates: new ones become rows, known ones get the blanks filled in."""
        for entry in entries:
            _check_renewal_method(entry.renewal_method)

        def w(tx: Tx) -> list[Placed]:
            placed: list[Placed] = []
            for entry in entries:
                facts = facts_of(x509.load_der_x509_certificate(entry.der))
                given = {
                    "owner": entry.owner,
                    "team": entry.team,
                    "application": entry.application,
                    "renewal_method": entry.renewal_method,
                }
                values = row_values(facts, entry.source, now, **{k: v for k, v in given.items() if v is not None})
                values["tags"] = json.dumps(sorted(set(entry.tags)))
                result = place(tx.conn, facts, values)
                if not result.created:
                    fill_blanks(tx.conn, result.id, given | {"tags": entry.tags}, now)
                placed.append(result)
            created = sum(p.created for p in placed)
            tx.audit(
                AuditEvent(
                    actor, "inventory.imported", "inventory", {"created": created, "known": len(placed) - created}
                )
            )
            return placed

        return await self._db.write(w)

    async def sight(self, seen: Sequence[Seen], *, at: dt.datetime, scan_id: int | None) -> list[Placed]:
        """Record what a scan saw: a certificate not yet known becomes a 'discovered' row, and each
        location is a sighting (first seen kept, last seen moved on)."""

        def w(tx: Tx) -> list[Placed]:
            return [
                sight(tx.conn, facts_of(s.certificate), kind=s.kind, location=s.location, at=at, scan_id=scan_id)
                for s in seen
            ]

        return await self._db.write(w)

    async def edit(self, inventory_id: int, change: Edit, *, actor: str, now: dt.datetime) -> InventoryRecord:
        """Operator edits: owner, team, application, renewal method, tags, what it replaces."""
        _check_renewal_method(change.renewal_method or None)

        def w(tx: Tx) -> None:
            current = tx.conn.execute(select(inventory.c.tags).where(inventory.c.id == inventory_id)).scalar()
            if current is None:
                raise BadRequest(f"no inventory record {inventory_id}")
            values: dict[str, object] = {}
            for name in ("owner", "team", "application", "renewal_method"):
                value = getattr(change, name)
                if value is not None:
                    values[name] = value or None
            if change.add_tags or change.remove_tags:
                tags = (set(json.loads(current)) | set(change.add_tags)) - set(change.remove_tags)
                values["tags"] = json.dumps(sorted(tags))
            if change.replaces_id is not None:
                _check_replaces(tx.conn, inventory_id, change.replaces_id)
                values["replaces_id"] = change.replaces_id
            if not values:
                raise BadRequest("nothing to change: give --owner, --team, --application, --renewal, --tag or --untag")
            tx.conn.execute(
                update(inventory).where(inventory.c.id == inventory_id).values(values | {"updated_at": now})
            )
            tx.audit(AuditEvent(actor, "inventory.edited", f"inventory/{inventory_id}", dict(values)))

        await self._db.write(w)
        found = await self.get(inventory_id)
        assert found is not None
        return found

    # -- reads ----------------------------------------------------------------------------
    async def records(self, flt: InventoryFilter, *, with_der: bool = False) -> list[InventoryRecord]:
        query = queries.filtered(flt, with_der=with_der)
        return await self._db.read(lambda conn: [queries.record(r) for r in conn.execute(query)])

    async def count(self, flt: InventoryFilter) -> int:
        query = queries.counted(flt)
        return await self._db.read(lambda conn: int(conn.execute(query).scalar_one()))

    async def get(self, inventory_id: int) -> InventoryRecord | None:
        query = queries.base_select(with_der=True).where(inventory.c.id == inventory_id)
        return await self._db.read_first(query, queries.record)

    async def find(self, reference: str) -> InventoryRecord | None:
        """An inventory id, or a fingerprint (hex, colons allowed; a unique prefix of 8 or more)."""
        text = reference.strip().lower().replace(":", "")
        if text.isdigit() and len(text) < 16:
            return await self.get(int(text))
        if len(text) < 8 or any(ch not in "0123456789abcdef" for ch in text):
            raise BadRequest(f"{reference!r} is neither an inventory id nor a fingerprint (8 hex digits or more)")
        query = queries.base_select(with_der=True).where(inventory.c.fingerprint.startswith(text)).limit(2)
        found = await self._db.read(lambda conn: [queries.record(r) for r in conn.execute(query)])
        if len(found) > 1:
            raise BadRequest(f"fingerprint prefix {reference!r} matches more than one certificate: give more digits")
        return found[0] if found else None

    async def sightings(self, inventory_id: int) -> list[Sighting]:
        query = select(sightings).where(sightings.c.inventory_id == inventory_id).order_by(sightings.c.first_seen)
        return await self._db.read(lambda conn: [queries.sighting(r) for r in conn.execute(query)])


def _check_renewal_method(method: str | None) -> None:
    if method is not None and method not in RENEWAL_METHODS:
        raise BadRequest(f"renewal method {method!r} is not one of {', '.join(RENEWAL_METHODS)}")


def _check_replaces(conn: Connection, inventory_id: int, replaces_id: int) -> None:
    if replaces_id == inventory_id:
        raise BadRequest("a certificate cannot replace itself")
    if conn.execute(select(inventory.c.id).where(inventory.c.id == replaces_id)).scalar() is None:
        raise BadRequest(f"no inventory record {replaces_id} to replace")
