"""The inventory: search (search-as-you-type with htmx, a plain GET form without it), one
certificate with its revoke and edit forms, and what expires in the next 90 days, by week.

What a viewer may see and change (its teams) is decided by the management actions these pages
call; the forms here only gather input and show the outcome.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web
from markupsafe import Markup

from ca.errors import CAError
from ca.inventory.model import Edit, InventoryFilter, InventoryRecord
from ca.operators.roles import Permission
from ca.revocation.reasons import REASONS
from server.manage.ui.context import authority, render, require
from server.reports.charts import chart_svg
from server.reports.data import expiring_report
from server.reports.model import week_of

PAGE = 50
EXPIRING_DAYS = 90


def _partial(request: web.Request) -> bool:
    """An htmx request wants the fragment it swaps in, not the whole page."""
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"


async def search(request: web.Request) -> web.Response:
    require(request, Permission.CERTIFICATES_READ)
    ca = authority(request)
    query = request.query.get("q", "").strip()[:255]
    now = ca.clock.now()
    await ca.inventory.sync(now)
    flt = InventoryFilter(name=query.lower() or None, order="expiry", limit=PAGE)
    if query and all(c in "0123456789abcdefABCDEF:" for c in query) and len(query) >= 6:
        flt = InventoryFilter(serial=query.replace(":", "").lower().lstrip("0") or "0", limit=PAGE)
    records = await ca.inventory.records(flt)
    context = {"query": query, "records": records, "now": now}
    template = "certificates_results.html" if _partial(request) else "certificates.html"
    return render(template, request, context)


async def _record(request: web.Request) -> InventoryRecord:
    record = await authority(request).inventory.get(int(request.match_info["id"]))
    if record is None:
        raise web.HTTPNotFound(text="no such certificate in the inventory\n")
    return record


async def show(request: web.Request) -> web.Response:
    seen = require(request, Permission.CERTIFICATES_READ)
    ca = authority(request)
    record = await _record(request)
    context = {
        "record": record,
        "status": record.status(ca.clock.now()).value,
        "locations": (await ca.inventory.locations([record.id])).get(record.id, ()),
        "reasons": list(REASONS),
        "can_revoke": seen.principal.can(Permission.CERTIFICATES_REVOKE) and record.certificate_id is not None,
        "can_edit": seen.principal.can(Permission.CERTIFICATES_EDIT),
        "message": request.query.get("done", ""),
    }
    return render("certificate.html", request, context)


async def revoke(request: web.Request) -> web.Response:
    seen = require(request, Permission.CERTIFICATES_REVOKE)
    ca = authority(request)
    record = await _record(request)
    form = await request.post()
    if record.issuer_name is None:
        raise web.HTTPBadRequest(text="only certificates this CA issued can be revoked here\n")
    try:
        await ca.revoke(
            record.issuer_name, int(record.serial, 16), str(form.get("reason", "")), requester=seen.principal.actor
        )
    except CAError as exc:
        raise web.HTTPConflict(text=f"not revoked: {exc.detail}\n") from None
    raise web.HTTPSeeOther(f"/ui/certificates/{record.id}?done=revoked")


async def edit(request: web.Request) -> web.Response:
    seen = require(request, Permission.CERTIFICATES_EDIT)
    ca = authority(request)
    record = await _record(request)
    form = await request.post()
    tags = tuple(t for t in str(form.get("tags", "")).replace(",", " ").split() if t)
    change = Edit(
        owner=str(form.get("owner", "")).strip(),
        team=str(form.get("team", "")).strip(),
        application=str(form.get("application", "")).strip(),
        add_tags=tuple(t for t in tags if t not in record.tags),
        remove_tags=tuple(t for t in record.tags if t not in tags),
    )
    try:
        await ca.inventory.edit(record.id, change, actor=seen.principal.actor, now=ca.clock.now())
    except CAError as exc:
        raise web.HTTPBadRequest(text=f"not changed: {exc.detail}\n") from None
    raise web.HTTPSeeOther(f"/ui/certificates/{record.id}?done=saved")


async def expiring(request: web.Request) -> web.Response:
    """A timeline: one row per week of the next 90 days with its certificates, and the chart."""
    require(request, Permission.CERTIFICATES_READ)
    ca = authority(request)
    now = ca.clock.now()
    report = await expiring_report(ca, days=EXPIRING_DAYS, now=now)
    weeks: dict[str, list[Any]] = {}
    for row in report.rows:
        label = "already expired" if row.expired else f"week of {week_of(row.not_after):%Y-%m-%d}"
        weeks.setdefault(label, []).append(row)
    context = {
        "days": EXPIRING_DAYS,
        "weeks": list(weeks.items()),
        "chart": Markup(chart_svg(report.charts[0])),
        "total": len(report.rows),
        "now": now,
        "first_week": week_of(now),
        "delta": dt.timedelta,
    }
    return render("expiring.html", request, context)
