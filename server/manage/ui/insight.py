"""What happened: discovery findings (the weak endpoints first), issuance per protocol over the
last weeks as a chart (the issued report's, server/reports), and the audit log, paged."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from markupsafe import Markup
from sqlalchemy import select

from ca.operators.roles import Permission
from ca.store.tables import audit_log
from server.manage.ui.context import authority, render, require_every_team
from server.reports.charts import chart_svg
from server.reports.data import SEVERITIES
from server.reports.issued import issued_report

ISSUANCE_WEEKS = 12
AUDIT_PAGE = 50


def _severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


async def discovery(request: web.Request) -> web.Response:
    require_every_team(request, Permission.DISCOVERY_READ)
    ca = authority(request)
    findings = await ca.scans.current_findings(limit=1000)
    findings.sort(key=lambda f: (_severity_rank(f.severity), f.location, f.code))
    weak = [f for f in findings if f.kind == "endpoint" and f.severity in ("critical", "warning")]
    context = {
        "findings": findings,
        "weak_endpoints": sorted({f.location for f in weak}),
        "scans": await ca.scans.recent(10),
    }
    return render("discovery.html", request, context)


async def issuance(request: web.Request) -> web.Response:
    require_every_team(request, Permission.CAS_READ)
    ca = authority(request)
    report = await issued_report(ca, weeks=ISSUANCE_WEEKS, now=ca.clock.now())
    context = {
        "weeks": ISSUANCE_WEEKS,
        "charts": [Markup(chart_svg(chart)) for chart in report.charts[:1]],
        "rows": report.rows,
    }
    return render("issuance.html", request, context)


@dataclass(frozen=True)
class AuditLine:
    seq: int
    at: str
    actor: str
    action: str
    target: str
    details: str


def _page(conn: Any, before: int | None) -> list[AuditLine]:
    query = select(audit_log).order_by(audit_log.c.seq.desc()).limit(AUDIT_PAGE)
    if before is not None:
        query = query.where(audit_log.c.seq < before)
    return [
        AuditLine(r.seq, f"{r.at:%Y-%m-%d %H:%M:%S}", r.actor, r.action, r.target, _details(r.details))
        for r in conn.execute(query)
    ]


def _details(text: str) -> str:
    try:
        values = json.loads(text)
    except ValueError:
        return text
    if not isinstance(values, dict):
        return text
    return ", ".join(f"{k}={v}" for k, v in values.items())


async def audit(request: web.Request) -> web.Response:
    """Newest first, AUDIT_PAGE events a page; `before` pages back by sequence number."""
    require_every_team(request, Permission.AUDIT_READ)
    raw = request.query.get("before", "")
    before = int(raw) if raw.isdigit() and len(raw) < 19 else None
    lines = await authority(request).db.read(lambda conn: _page(conn, before))
    older = lines[-1].seq if len(lines) == AUDIT_PAGE and lines[-1].seq > 1 else None
    return render("audit.html", request, {"lines": lines, "older": older, "before": before})
