"""Discovery through the management plane: scans and what they found, and starting a scan.

A scan belongs to the team it was run for: a team-bound principal starts scans for its team,
and sees only its teams' scans and the findings of endpoints its teams scanned last; another
team's scan is refused as a missing one (OPS-02). Scans the CLI or a schedule ran have no team:
only principals that see every team see them.

A scan is checked before anything is sent (the cap and the allow-list of [discovery], CLM-05),
recorded (audited as discovery.started with the principal), and then run in the background by
server/discovery/run.py; the caller gets its id at once and follows it with GET. Scanning the
server's own disk reads whatever the server can read, so file scans are for principals that
see every team.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from ca.errors import BadRequest
from ca.inventory.scans import CurrentFinding, ScanFinding, ScanRecord
from ca.operators.principal import Principal
from ca.operators.roles import Permission
from ca.service import CertificateAuthority
from server.discovery.run import plan_network_scan, scan_files, scan_network, start_scan
from server.discovery.settings import DiscoverySettings
from server.discovery.targets import TargetError
from server.manage.actions.access import own_team, require, visible
from server.manage.actions.errors import Forbidden, NotVisible

log = logging.getLogger("tetra.manage")

WHAT = "scan"
SEVERITIES = ("critical", "warning", "info")
MAX_TARGETS = 256  # target lines in one request; each may be a range (the cap counts endpoints)
MAX_PATHS = 64

# Scans running in the background, by the CA they write to: each task with its scan's id and
# actor. Held so they are not collected mid-run, and stopped (stop_scans) before that CA closes.
_RUNNING: weakref.WeakKeyDictionary[CertificateAuthority, dict[asyncio.Task[Any], tuple[int, str]]] = (
    weakref.WeakKeyDictionary()
)


def _teams(principal: Principal) -> frozenset[str] | None:
    return None if principal.all_teams else principal.teams


async def scans(
    ca: CertificateAuthority, principal: Principal, *, after_id: int | None, limit: int
) -> list[ScanRecord]:
    require(principal, Permission.DISCOVERY_READ)
    return await ca.scans.scans(after_id=after_id, limit=limit, teams=_teams(principal))


async def recent(ca: CertificateAuthority, principal: Principal, limit: int) -> list[ScanRecord]:
    """The latest scans the principal may see, newest first (the dashboard's list)."""
    require(principal, Permission.DISCOVERY_READ)
    return await ca.scans.recent(limit, teams=_teams(principal))


async def show(ca: CertificateAuthority, principal: Principal, scan_id: int) -> ScanRecord:
    require(principal, Permission.DISCOVERY_READ)
    record = await ca.scans.get(scan_id)
    if record is None:
        raise NotVisible(WHAT)
    visible(principal, record.team, WHAT)
    return record


async def findings(
    ca: CertificateAuthority,
    principal: Principal,
    scan_id: int,
    *,
    severity: str | None,
    after_id: int | None,
    limit: int,
) -> list[ScanFinding]:
    await show(ca, principal, scan_id)
    return await ca.scans.findings(scan_id, after_id=after_id, limit=limit, severity=severity)


async def current_findings(
    ca: CertificateAuthority, principal: Principal, *, severity: str | None, location: str | None, limit: int
) -> list[CurrentFinding]:
    """Weak endpoints and files now: each location's findings from the last scan that reached it."""
    require(principal, Permission.DISCOVERY_READ)
    return await ca.scans.current_findings(
        severity=severity, location_prefix=location, limit=limit, teams=_teams(principal)
    )


async def start_network_scan(
    ca: CertificateAuthority,
    settings: DiscoverySettings,
    principal: Principal,
    *,
    targets: list[str],
    ports: list[int],
    team: str | None,
) -> int:
    require(principal, Permission.DISCOVERY_SCAN)
    scan_team = own_team(principal, team)
    try:
        endpoints = await plan_network_scan(settings, targets, ports)
    except TargetError as exc:
        raise BadRequest(str(exc)) from None
    scan_id = await start_scan(ca, "network", targets, actor=principal.actor, team=scan_team)
    run = scan_network(ca, settings, endpoints, targets=targets, actor=principal.actor, scan_id=scan_id)
    _background(ca, run, scan_id, principal.actor)
    return scan_id


async def start_file_scan(
    ca: CertificateAuthority, settings: DiscoverySettings, principal: Principal, *, paths: list[str]
) -> int:
    require(principal, Permission.DISCOVERY_SCAN)
    if not principal.all_teams:
        raise Forbidden("scanning the server's files is for operators who see every team")
    if not all(Path(p).is_absolute() for p in paths):
        raise BadRequest("paths are absolute paths on the CA server")
    chosen = [Path(p) for p in paths]
    scan_id = await start_scan(ca, "files", paths, actor=principal.actor)
    run = scan_files(ca, settings, chosen, actor=principal.actor, scan_id=scan_id)
    _background(ca, run, scan_id, principal.actor)
    return scan_id


def running(ca: CertificateAuthority) -> frozenset[asyncio.Task[Any]]:
    """The scans started here that are still running on ``ca``."""
    return frozenset(_RUNNING.get(ca, {}))


async def stop_scans(ca: CertificateAuthority) -> None:
    """Cancel the scans still running on ``ca`` and record each as failed: the server calls
    this before it closes the CA. A scan cancelled mid-probe records itself (run.py's finally);
    one cancelled before it got that far is recorded here, so none stays "running" for ever."""
    tasks = dict(_RUNNING.get(ca, {}))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for scan_id, actor in tasks.values():
        record = await ca.scans.get(scan_id)
        if record is not None and record.status == "running":
            summary = {"scan": scan_id, "stopped": "the server stopped before the scan ended"}
            await ca.scans.finish(scan_id, status="failed", summary=summary, actor=actor, now=ca.clock.now())


def _background(ca: CertificateAuthority, run: Coroutine[Any, Any, Any], scan_id: int, actor: str) -> None:
    task = asyncio.get_running_loop().create_task(run, name=f"discovery-scan-{scan_id}")
    tasks = _RUNNING.setdefault(ca, {})
    tasks[task] = (scan_id, actor)
    task.add_done_callback(lambda done: tasks.pop(done, None))
    task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed: %s", task.get_name(), task.exception())
