"""Discovery scans as the inventory keeps them: the scan, each location's latest result, and
the findings at it.

A location's findings are those of the last scan that reached it (``discovery_locations``
points at that scan), so an endpoint fixed since is no longer reported, while an endpoint a later
scan did not cover keeps what was last known. The certificates a scan saw go through the
inventory store's ``sight`` in the same transaction as the location's result.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.engine import Row

from ca.audit import AuditEvent
from ca.inventory.facts import facts_of
from ca.inventory.model import Source
from ca.inventory.tables import discovery_findings, discovery_locations, discovery_scans
from ca.inventory.upsert import Placed, dialect_insert, place, row_values, sight
from ca.store.db import Database, Tx
from ca.store.tables import utc_value


@dataclass(frozen=True)
class FindingNote:
    code: str
    severity: str  # critical | warning | info
    detail: str


@dataclass(frozen=True)
class LocationResult:
    """What one scan learnt at one endpoint or file."""

    kind: str  # endpoint | file
    location: str
    certificates: tuple[x509.Certificate, ...]  # leaf first for an endpoint
    findings: tuple[FindingNote, ...] = ()
    protocols: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class CurrentFinding:
    location: str
    kind: str
    code: str
    severity: str
    detail: str
    inventory_id: int | None
    at: dt.datetime


@dataclass(frozen=True)
class ScanRecord:
    id: int
    kind: str
    targets: tuple[str, ...]
    requested_by: str
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    summary: dict[str, Any]
    team: str | None = None  # the team it was run for (its findings are that team's to see)


@dataclass(frozen=True)
class ScanFinding:
    """One finding of one scan, as that scan recorded it."""

    id: int
    location: str
    code: str
    severity: str
    detail: str
    inventory_id: int | None
    at: dt.datetime


class ScanStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def start(
        self, kind: str, targets: Sequence[str], *, actor: str, now: dt.datetime, team: str | None = None
    ) -> int:
        details: dict[str, object] = {"kind": kind, "targets": list(targets)}
        if team is not None:
            details["team"] = team

        def w(tx: Tx) -> int:
            scan_id = tx.conn.execute(
                insert(discovery_scans)
                .values(
                    kind=kind,
                    targets=json.dumps(list(targets)),
                    requested_by=actor,
                    status="running",
                    started_at=now,
                    summary="{}",
                    team=team,
                )
                .returning(discovery_scans.c.id)
            ).scalar_one()
            tx.audit(AuditEvent(actor, "discovery.started", f"scan/{scan_id}", details))
            return int(scan_id)

        return await self._db.write(w)

    async def record(self, scan_id: int, results: Sequence[LocationResult], *, at: dt.datetime) -> None:
        """A batch of locations: their certificates into the inventory (sightings), their findings,
        and each location's pointer moved to this scan. One transaction per batch."""

        def w(tx: Tx) -> None:
            known: dict[str, Placed] = {}
            for result in results:
                leaf_id = None
                # An endpoint's own certificate is deployed there; the chain's CAs are inventoried
                # but not "seen" at it. Every certificate in a file is kept in that file.
                deployed = result.certificates[:1] if result.kind == "endpoint" else result.certificates
                for certificate in result.certificates:
                    facts = facts_of(certificate)
                    if certificate in deployed:
                        placed = sight(
                            tx.conn, facts, kind=result.kind, location=result.location, at=at, scan_id=scan_id
                        )
                    elif facts.fingerprint in known:  # the same intermediate behind a hundred endpoints
                        placed = known[facts.fingerprint]
                    else:
                        placed = place(tx.conn, facts, row_values(facts, Source.DISCOVERED, at))
                    known[facts.fingerprint] = placed
                    leaf_id = leaf_id or placed.id
                if result.findings:
                    tx.conn.execute(
                        insert(discovery_findings),
                        [
                            {
                                "scan_id": scan_id,
                                "location": result.location,
                                "code": f.code,
                                "severity": f.severity,
                                "detail": f.detail,
                                "inventory_id": leaf_id,
                                "at": at,
                            }
                            for f in result.findings
                        ],
                    )
                location = dialect_insert(tx.conn, discovery_locations).values(
                    location=result.location,
                    kind=result.kind,
                    last_scan_id=scan_id,
                    last_scanned_at=at,
                    protocols=json.dumps(list(result.protocols)),
                    error=result.error,
                )
                tx.conn.execute(
                    location.on_conflict_do_update(
                        index_elements=["location"],
                        set_={
                            "last_scan_id": scan_id,
                            "last_scanned_at": at,
                            "protocols": json.dumps(list(result.protocols)),
                            "error": result.error,
                            "kind": result.kind,
                        },
                    )
                )

        await self._db.write(w)

    async def finish(self, scan_id: int, *, status: str, summary: dict[str, Any], actor: str, now: dt.datetime) -> None:
        def w(tx: Tx) -> None:
            tx.conn.execute(
                update(discovery_scans)
                .where(discovery_scans.c.id == scan_id)
                .values(status=status, finished_at=now, summary=json.dumps(summary, sort_keys=True))
            )
            tx.audit(AuditEvent(actor, "discovery.finished", f"scan/{scan_id}", {"status": status} | summary))

        await self._db.write(w)

    async def get(self, scan_id: int) -> ScanRecord | None:
        return await self._db.read_first(select(discovery_scans).where(discovery_scans.c.id == scan_id), _scan)

    async def last_started(self, requested_by: str) -> dt.datetime | None:
        """When the latest scan ``requested_by`` asked for began (a schedule's last run)."""
        query = select(func.max(discovery_scans.c.started_at)).where(discovery_scans.c.requested_by == requested_by)
        return await self._db.read(lambda conn: utc_value(conn.execute(query).scalar()))

    async def recent(self, limit: int = 50, *, teams: frozenset[str] | None = None) -> list[ScanRecord]:
        """The latest scans, newest first; ``teams``: only scans run for one of them."""
        query = select(discovery_scans).order_by(discovery_scans.c.id.desc()).limit(limit)
        if teams is not None:
            query = query.where(discovery_scans.c.team.in_(sorted(teams)))
        return await self._db.read(lambda conn: [_scan(r) for r in conn.execute(query)])

    async def scans(self, *, after_id: int | None, limit: int, teams: frozenset[str] | None) -> list[ScanRecord]:
        """Scans in id order after ``after_id``; ``teams``: only scans run for one of them."""
        c = discovery_scans.c
        query = select(discovery_scans).where(c.id > (after_id or 0)).order_by(c.id).limit(limit)
        if teams is not None:
            query = query.where(c.team.in_(sorted(teams)))
        return await self._db.read(lambda conn: [_scan(r) for r in conn.execute(query)])

    async def findings(
        self, scan_id: int, *, after_id: int | None, limit: int, severity: str | None = None
    ) -> list[ScanFinding]:
        """What one scan found, in id order after ``after_id``."""
        f = discovery_findings.c
        query = (
            select(f.id, f.location, f.code, f.severity, f.detail, f.inventory_id, f.at)
            .where(f.scan_id == scan_id, f.id > (after_id or 0))
            .order_by(f.id)
            .limit(limit)
        )
        if severity is not None:
            query = query.where(f.severity == severity)
        return await self._db.read(lambda conn: [ScanFinding(**r._mapping) for r in conn.execute(query)])

    async def current_findings(
        self,
        *,
        codes: Sequence[str] = (),
        location_prefix: str | None = None,
        limit: int = 10_000,
        severity: str | None = None,
        teams: frozenset[str] | None = None,
    ) -> list[CurrentFinding]:
        """Findings of each location's latest scan (a fixed endpoint drops out once rescanned);
        ``teams``: only where that latest scan was run for one of them."""
        f, loc = discovery_findings.c, discovery_locations.c
        query = (
            select(f.location, loc.kind, f.code, f.severity, f.detail, f.inventory_id, f.at)
            .select_from(
                discovery_findings.join(
                    discovery_locations, and_(loc.location == f.location, loc.last_scan_id == f.scan_id)
                )
            )
            .order_by(f.location, f.code)
            .limit(limit)
        )
        if severity is not None:
            query = query.where(f.severity == severity)
        if teams is not None:
            run_for = select(discovery_scans.c.id).where(discovery_scans.c.team.in_(sorted(teams)))
            query = query.where(f.scan_id.in_(run_for))
        if codes:
            query = query.where(f.code.in_(list(codes)))
        if location_prefix:
            query = query.where(f.location.startswith(location_prefix, autoescape=True))
        return await self._db.read(lambda conn: [CurrentFinding(**r._mapping) for r in conn.execute(query)])


def _scan(row: Row[Any]) -> ScanRecord:
    m = row._mapping
    return ScanRecord(
        id=m["id"],
        kind=m["kind"],
        targets=tuple(json.loads(m["targets"])),
        requested_by=m["requested_by"],
        status=m["status"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        summary=json.loads(m["summary"]),
        team=m["team"],
    )
