"""Reading the certificates a notification pass must look at, through the inventory's indexes.

The rules (ca/notices/rules.py) decide; this only narrows the inventory to what could be due, so
a pass over a large inventory reads the certificates near expiry (``not_after`` index), the weak
ones (key size, signature algorithm), and each expiring certificate's possible successors (by
name and by ``replaces_id``), never the whole table except for the never-deployed check, which
pages through what Tetra issued.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select
from sqlalchemy.engine import Connection

from ca.inventory import queries
from ca.inventory.model import InventoryFilter, InventoryRecord, Source, Status
from ca.inventory.tables import discovery_scans, inventory, inventory_names
from ca.notices.rules import WEAK_KEY_BELOW, WEAK_SIGNATURES, weaknesses
from ca.notices.settings import NotificationSettings

if TYPE_CHECKING:
    from ca.service import CertificateAuthority

PAGE = 1000
CHUNK = 500  # ids or names in one IN (...)


async def pages(ca: CertificateAuthority, flt: InventoryFilter) -> AsyncIterator[InventoryRecord]:
    """Every record the filter matches, a page at a time in id order."""
    after: int | None = None
    while True:
        page = await ca.inventory.records(replace(flt, after_id=after, limit=PAGE, order="id"))
        for record in page:
            yield record
        if len(page) < PAGE:
            return
        after = page[-1].id


def longest_threshold(settings: NotificationSettings) -> dt.timedelta:
    lists = [settings.thresholds_days, *settings.profile_thresholds.values()]
    lists += [t.thresholds_days for t in settings.teams.values() if t.thresholds_days is not None]
    days = max((d for days in lists for d in days), default=0)
    return dt.timedelta(days=max(days, settings.short_lived_days))


async def expiring(ca: CertificateAuthority, now: dt.datetime, within: dt.timedelta) -> list[InventoryRecord]:
    """Unexpired certificates ending within ``within`` of ``now`` (revoked ones dropped later)."""
    flt = InventoryFilter(expiring_before=now + within, valid_at=now)
    return [r async for r in pages(ca, flt)]


async def successors(ca: CertificateAuthority, records: Sequence[InventoryRecord]) -> dict[int, list[InventoryRecord]]:
    """For each record, the certificates that may renew it: those naming it in ``replaces_id``
    and those carrying its first name. Two indexed queries per CHUNK records."""
    found: dict[int, list[InventoryRecord]] = {r.id: [] for r in records}
    first_names = {r.id: r.sans[0].partition(":")[2].lower() for r in records if r.sans}
    ids = list(found)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        names = {first_names[i] for i in chunk if i in first_names}
        replacing = queries.base_select().where(inventory.c.replaces_id.in_(chunk))
        named = select(inventory_names.c.inventory_id).where(inventory_names.c.name.in_(names))
        for other in await ca.db.read(partial(_records, query=replacing)):
            if other.replaces_id is not None:
                found[other.replaces_id].append(other)
        same_name = await ca.db.read(partial(_records, query=queries.base_select().where(inventory.c.id.in_(named))))
        for record_id in chunk:
            name = first_names.get(record_id)
            found[record_id] += [o for o in same_name if name in {n.partition(":")[2].lower() for n in o.sans}]
    return found


def _records(conn: Connection, query: Select[Any]) -> list[InventoryRecord]:
    return [queries.record(row) for row in conn.execute(query)]


async def scans_finished(ca: CertificateAuthority) -> bool:
    """Whether any discovery scan has finished: before one has, nothing counts as never deployed."""
    query = select(discovery_scans.c.id).where(discovery_scans.c.finished_at.is_not(None)).limit(1)
    return await ca.db.read(lambda conn: conn.execute(query).first() is not None)


async def weak_records(
    ca: CertificateAuthority, now: dt.datetime, settings: NotificationSettings
) -> list[tuple[InventoryRecord, str]]:
    """Each (certificate, weakness rule) that holds now, once."""
    finished = await scans_finished(ca)
    filters = [InventoryFilter(key_size_below=WEAK_KEY_BELOW, valid_at=now)]
    filters += [InventoryFilter(signature_algorithm=name, valid_at=now) for name in WEAK_SIGNATURES]
    filters.append(InventoryFilter(status=Status.REVOKED, now=now, valid_at=now))
    if finished:
        filters.append(InventoryFilter(source=Source.TETRA, valid_at=now))
    seen: set[int] = set()
    out: list[tuple[InventoryRecord, str]] = []
    for flt in filters:
        async for record in pages(ca, flt):
            if record.id in seen:
                continue
            seen.add(record.id)
            out += [(record, rule) for rule in weaknesses(record, now, settings, scans_finished=finished)]
    return out
