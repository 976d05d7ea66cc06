"""What happened: discovery findings (the weak endpoints first), issuance per protocol over the
last weeks as a chart (the issued report's, server/reports), and the audit log, paged."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from markupsafe import Markup

from ca.audit import AuditFilter, LoggedEvent
from ca.operators.roles import Permission
from server.manage.actions import audit as audit_actions
from server.manage.actions import discovery as discovery_actions
from server.manage.ui.context import authority, render, require_every_team, viewer
from server.reports.charts import chart_svg
from server.reports.data import SEVERITIES
from server.reports.issued import issued_report

ISSUANCE_WEEKS = 12
AUDIT_PAGE = 50


def _severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


async def discovery(request: web.Request) -> web.Response:
    """The findings and scans the viewer may see: every team's, or its teams' scans' only
    (decided by the discovery actions, as for the API)."""
    ca, principal = authority(request), viewer(request).principal
    findings = await discovery_actions.current_findings(ca, principal, severity=None, location=None, limit=1000)
    findings.sort(key=lambda f: (_severity_rank(f.severity), f.location, f.code))
    weak = [f for f in findings if f.kind == "endpoint" and f.severity in ("critical", "warning")]
    context = {
        "findings": findings,
        "weak_endpoints": sorted({f.location for f in weak}),
        "scans": await discovery_actions.recent(ca, principal, 10),
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

    @classmethod
    def of(cls, logged: LoggedEvent) -> AuditLine:
        event = logged.event
        details = ", ".join(f"{k}={v}" for k, v in event.details.items())
        return cls(logged.seq, f"{logged.at:%Y-%m-%d %H:%M:%S}", event.actor, event.action, event.target, details)


async def audit(request: web.Request) -> web.Response:
    """Newest first, AUDIT_PAGE events a page; `before` pages back by sequence number."""
    raw = request.query.get("before", "")
    before = int(raw) if raw.isdigit() and len(raw) < 19 else None
    logged = await audit_actions.events(
        authority(request),
        viewer(request).principal,
        AuditFilter(),
        after_seq=before,
        limit=AUDIT_PAGE,
        newest_first=True,
    )
    lines = [AuditLine.of(e) for e in logged]
    older = lines[-1].seq if len(lines) == AUDIT_PAGE and lines[-1].seq > 1 else None
    return render("audit.html", request, {"lines": lines, "older": older, "before": before})
