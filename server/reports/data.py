"""Gathering the expiring, weak and inventory reports from the inventory (the issued report,
which counts rather than lists, is in ``issued.py``).

Each starts by syncing the inventory with the CA's ledger, so a certificate issued a moment ago
is in the report. Rows are read in pages in id order (the store's keyset paging), so a large
inventory is never one unbounded query; locations are read only for certificates that were ever
seen somewhere (``last_seen_at``), which most of a CA's own fresh certificates were not yet.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ca.inventory.model import InventoryFilter, InventoryRecord
from ca.notices.candidates import weak_records
from ca.notices.rules import WEAK_KEY_BELOW
from ca.notices.settings import NotificationSettings
from server.reports.model import Chart, Report, Series, columns_of, count_by, week_of

if TYPE_CHECKING:
    from ca.inventory.store import InventoryStore
    from ca.service import CertificateAuthority

PAGE = 1000
SEVERITIES = ("critical", "warning", "info")


@dataclass(frozen=True)
class ExpiringRow:
    inventory_id: int
    not_after: dt.datetime
    days_left: int  # whole days until expiry; negative: expired that many days ago
    expired: bool
    subject: str
    names: tuple[str, ...]
    issuer: str
    serial: str
    owner: str | None
    team: str | None
    application: str | None
    locations: tuple[str, ...]  # where discovery saw it
    declared_location: str | None  # where its requester said it would go (Tetra-issued)
    renewal_method: str | None
    source: str
    fingerprint: str


@dataclass(frozen=True)
class WeakRow:
    problem: str  # weak-key, weak-signature, revoked-deployed, never-deployed, or a discovery finding code
    severity: str  # critical | warning | info
    subject: str
    locations: tuple[str, ...]
    detail: str
    inventory_id: int | None
    not_after: dt.datetime | None
    owner: str | None
    team: str | None
    application: str | None
    fingerprint: str


@dataclass(frozen=True)
class InventoryRow:
    inventory_id: int
    subject: str
    names: tuple[str, ...]
    issuer: str  # the Tetra CA's name, else the issuer DN
    issuer_dn: str
    serial: str
    key_algorithm: str
    key_size: int
    signature_algorithm: str
    not_before: dt.datetime
    not_after: dt.datetime
    status: str
    is_ca: bool
    owner: str | None
    team: str | None
    application: str | None
    source: str
    renewal_method: str | None
    fingerprint: str
    locations: tuple[str, ...]  # where discovery saw it
    declared_location: str | None  # where its requester said it would go (Tetra-issued)


async def all_records(store: InventoryStore, flt: InventoryFilter) -> list[InventoryRecord]:
    """Every record ``flt`` matches, read a page at a time in id order."""
    out: list[InventoryRecord] = []
    after: int | None = None
    while True:
        page = await store.records(dataclasses.replace(flt, order="id", after_id=after, limit=PAGE))
        out.extend(page)
        if len(page) < PAGE:
            return out
        after = page[-1].id


def issuer_of(record: InventoryRecord) -> str:
    return record.issuer_name or record.issuer_dn


# -- expiring -------------------------------------------------------------------------------------
async def expiring_report(ca: CertificateAuthority, *, days: int, now: dt.datetime) -> Report:
    """Unrevoked certificates ending within ``days`` days, soonest first; expired ones included."""
    store = ca.inventory
    await store.sync(now)
    found = await all_records(store, InventoryFilter(expiring_before=now + dt.timedelta(days=days)))
    records = sorted((r for r in found if r.revoked_at is None), key=lambda r: (r.not_after, r.id))
    where = await store.locations([r.id for r in records])
    rows = tuple(
        [
            ExpiringRow(
                inventory_id=r.id,
                not_after=r.not_after,
                days_left=math.floor((r.not_after - now).total_seconds() / 86400),
                expired=r.not_after <= now,
                subject=r.subject,
                names=r.sans,
                issuer=issuer_of(r),
                serial=r.serial,
                owner=r.owner,
                team=r.team,
                application=r.application,
                locations=where.get(r.id, ()),
                declared_location=r.declared_location,
                renewal_method=r.renewal_method,
                source=r.source.value,
                fingerprint=r.fingerprint,
            )
            for r in records
        ]
    )
    return Report(
        kind="expiring",
        title=f"Certificates expiring within {days} days",
        generated_at=now,
        parameters={"days": days},
        columns=columns_of(ExpiringRow),
        rows=rows,
        charts=(expiries_per_week([row.not_after for row in rows], days, now),),
    )


def expiries_per_week(ends: Iterable[dt.datetime], days: int, now: dt.datetime) -> Chart:
    """How many certificates end in each week of the next ``days`` days (the expired in a bar of
    their own, first): the expiring report's chart, and the dashboard's timeline's."""
    first, last = week_of(now), week_of(now + dt.timedelta(days=days))
    weeks = [first + dt.timedelta(weeks=n) for n in range((last - first).days // 7 + 1)]
    labels = ("expired", *(w.isoformat() for w in weeks))
    keys = ["expired" if end <= now else week_of(end).isoformat() for end in ends]
    return Chart("Expiries per week (week starting)", labels, (Series("certificates", count_by(labels, keys)),))


# -- weak -----------------------------------------------------------------------------------------
async def weak_report(
    ca: CertificateAuthority, *, now: dt.datetime, settings: NotificationSettings | None = None
) -> Report:
    """Weak keys and signatures, revoked certificates still deployed, Tetra certificates never
    deployed, and what the latest discovery scans found at each endpoint."""
    store = ca.inventory
    await store.sync(now)
    found = await weak_records(ca, now, settings or NotificationSettings())
    where = await store.locations([record.id for record, _ in found])
    rows = [_certificate_problem(record, rule, where.get(record.id, ())) for record, rule in found]
    rows.extend(await _endpoint_findings(ca))
    rows.sort(key=lambda w: (_severity_rank(w.severity), w.problem, w.subject, w.locations))
    return Report(
        kind="weak",
        title="Weak, misplaced and unused certificates",
        generated_at=now,
        parameters={},
        columns=columns_of(WeakRow),
        rows=tuple(rows),
        charts=(_problems_per_kind(rows),),
    )


def _certificate_problem(r: InventoryRecord, rule: str, locations: tuple[str, ...]) -> WeakRow:
    """One row for a certificate breaking a weakness rule (ca/notices/rules.py decides which)."""
    severity, detail = "critical", ""
    if rule == "weak-key":
        detail = f"{r.key_algorithm.upper()} key of {r.key_size} bits (under {WEAK_KEY_BELOW})"
    elif rule == "weak-signature":
        detail = f"signed with {r.signature_algorithm}"
    elif rule == "revoked-deployed" and r.revoked_at and r.last_seen_at:
        detail = f"revoked {r.revoked_at:%Y-%m-%d}, last seen {r.last_seen_at:%Y-%m-%d}"
    elif rule == "never-deployed":
        severity, detail = "info", f"issued {r.not_before:%Y-%m-%d}, not seen at any location"
    return WeakRow(
        problem=rule,
        severity=severity,
        subject=r.subject,
        locations=locations,
        detail=detail,
        inventory_id=r.id,
        not_after=r.not_after,
        owner=r.owner,
        team=r.team,
        application=r.application,
        fingerprint=r.fingerprint,
    )


async def _endpoint_findings(ca: CertificateAuthority) -> list[WeakRow]:
    known: dict[int, InventoryRecord | None] = {}
    rows = []
    for f in await ca.scans.current_findings():
        record = None
        if f.inventory_id is not None:
            if f.inventory_id not in known:
                known[f.inventory_id] = await ca.inventory.get(f.inventory_id)
            record = known[f.inventory_id]
        rows.append(
            WeakRow(
                problem=f.code,
                severity=f.severity,
                subject=record.subject if record else "",
                locations=(f.location,),
                detail=f.detail,
                inventory_id=f.inventory_id,
                not_after=record.not_after if record else None,
                owner=record.owner if record else None,
                team=record.team if record else None,
                application=record.application if record else None,
                fingerprint=record.fingerprint if record else "",
            )
        )
    return rows


def _severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def _problems_per_kind(rows: list[WeakRow]) -> Chart:
    by_problem = Counter(row.problem for row in rows)
    labels = tuple(sorted(by_problem, key=lambda p: (-by_problem[p], p)))
    present = sorted({row.severity for row in rows}, key=_severity_rank)
    series = tuple(
        Series(severity, count_by(labels, [row.problem for row in rows if row.severity == severity]))
        for severity in present
    )
    return Chart("Problems per kind", labels, series, stacked=True, horizontal=True)


# -- inventory ------------------------------------------------------------------------------------
async def inventory_report(ca: CertificateAuthority, *, now: dt.datetime) -> Report:
    """PCI DSS 4.0 req. 4.2.1.1: every unexpired certificate (trusted key) and where it is used."""
    store = ca.inventory
    await store.sync(now)
    records = await all_records(store, InventoryFilter(valid_at=now))
    where = await store.locations([r.id for r in records])
    rows = tuple(
        [
            InventoryRow(
                inventory_id=r.id,
                subject=r.subject,
                names=r.sans,
                issuer=issuer_of(r),
                issuer_dn=r.issuer_dn,
                serial=r.serial,
                key_algorithm=r.key_algorithm,
                key_size=r.key_size,
                signature_algorithm=r.signature_algorithm,
                not_before=r.not_before,
                not_after=r.not_after,
                status=r.status(now).value,
                is_ca=r.is_ca,
                owner=r.owner,
                team=r.team,
                application=r.application,
                source=r.source.value,
                renewal_method=r.renewal_method,
                fingerprint=r.fingerprint,
                locations=where.get(r.id, ()),
                declared_location=r.declared_location,
            )
            for r in records
        ]
    )
    return Report(
        kind="inventory",
        title="Inventory of trusted keys and certificates (PCI DSS 4.0, 4.2.1.1)",
        generated_at=now,
        parameters={},
        columns=columns_of(InventoryRow),
        rows=rows,
        charts=(
            _tally("Certificates per issuer", [row.issuer for row in rows]),
            _tally("Certificates per key type", [f"{row.key_algorithm}-{row.key_size}" for row in rows]),
            _tally("Certificates per status", [row.status for row in rows]),
        ),
    )


def _tally(title: str, keys: list[str]) -> Chart:
    counts = Counter(keys)
    labels = tuple(sorted(counts, key=lambda k: (-counts[k], k)))
    return Chart(title, labels, (Series("certificates", count_by(labels, keys)),), horizontal=True)
