"""The inventory: search (search-as-you-type with htmx, a plain GET form without it), one
certificate with its revoke and edit forms, and what expires in the next 90 days, by week.

Every read and change goes through the management actions (server/manage/actions/
certificates.py), which decide permissions and teams: a certificate of another team is "not
found" here exactly as in the API (OPS-02). The forms only gather input and show the outcome.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from aiohttp import web
from markupsafe import Markup

from ca.inventory.model import InventoryFilter, InventoryRecord
from ca.operators.roles import Permission
from ca.revocation.reasons import REASONS
from server.manage.actions import certificates as actions
from server.manage.ui.context import authority, render, require, viewer
from server.reports.charts import chart_svg
from server.reports.data import expiries_per_week
from server.reports.model import week_of

PAGE = 50
EXPIRING_DAYS = 90
EXPIRING_SHOWN = 1000
FIELD_MAX = 255


def partial(request: web.Request) -> bool:
    """An htmx request wants the fragment it swaps in, not the whole page."""
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"


def _filter(query: str) -> InventoryFilter:
    """A serial (hex, colons allowed, six digits or more) or else a name and the names under it."""
    digits = query.replace(":", "")
    if len(digits) >= 6 and all(c in "0123456789abcdefABCDEF" for c in digits):
        return InventoryFilter(serial=digits.lower().lstrip("0") or "0", limit=PAGE)
    return InventoryFilter(name=query.lower() or None, order="expiry", limit=PAGE)


async def search(request: web.Request) -> web.Response:
    seen = viewer(request)
    ca = authority(request)
    query = request.query.get("q", "").strip()[:FIELD_MAX]
    records = await actions.search(ca, seen.principal, _filter(query))
    context = {"query": query, "records": records, "now": ca.clock.now()}
    return render("certificates_results.html" if partial(request) else "certificates.html", request, context)


def _id(request: web.Request) -> int:
    return int(request.match_info["id"])


async def show(request: web.Request) -> web.Response:
    seen = viewer(request)
    ca = authority(request)
    record = await actions.show(ca, seen.principal, _id(request))
    context = {
        "record": record,
        "status": record.status(ca.clock.now()).value,
        "locations": (await ca.inventory.locations([record.id])).get(record.id, ()),
        "reasons": list(REASONS),
        "can_revoke": seen.principal.can(Permission.CERTIFICATES_REVOKE) and record.certificate_id is not None,
        "can_edit": seen.principal.can(Permission.CERTIFICATES_EDIT),
        "message": request.query.get("done", "")[:20],
    }
    return render("certificate.html", request, context)


async def revoke(request: web.Request) -> web.Response:
    seen = viewer(request)
    form = await request.post()
    inventory_id = _id(request)
    await actions.revoke(authority(request), seen.principal, inventory_id, str(form.get("reason", ""))[:40])
    raise web.HTTPSeeOther(f"/ui/certificates/{inventory_id}?done=revoked")


def _field(form: Mapping[str, object], name: str) -> str:
    return str(form.get(name, "")).strip()[:FIELD_MAX]


async def edit(request: web.Request) -> web.Response:
    seen = viewer(request)
    form = await request.post()
    tags = tuple(t for t in _field(form, "tags").replace(",", " ").split() if t)
    labels = actions.Labels(
        owner=_field(form, "owner"), team=_field(form, "team"), application=_field(form, "application"), tags=tags
    )
    inventory_id = _id(request)
    await actions.edit(authority(request), seen.principal, inventory_id, labels)
    raise web.HTTPSeeOther(f"/ui/certificates/{inventory_id}?done=saved")


async def expiring(request: web.Request) -> web.Response:
    """A timeline: one entry per week of the next 90 days with its certificates, and the chart;
    the viewer's teams only (the search action narrows it)."""
    seen = require(request, Permission.CERTIFICATES_READ)
    ca = authority(request)
    now = ca.clock.now()
    flt = InventoryFilter(expiring_before=now + dt.timedelta(days=EXPIRING_DAYS), order="expiry", limit=EXPIRING_SHOWN)
    found = await actions.search(ca, seen.principal, flt)
    records = [r for r in found if r.revoked_at is None]
    weeks: dict[str, list[InventoryRecord]] = {}
    for record in records:
        label = "already expired" if record.not_after <= now else f"week of {week_of(record.not_after):%Y-%m-%d}"
        weeks.setdefault(label, []).append(record)
    context = {
        "days": EXPIRING_DAYS,
        "weeks": list(weeks.items()),
        "chart": Markup(chart_svg(expiries_per_week([r.not_after for r in records], EXPIRING_DAYS, now))),
        "total": len(records),
        "until": now + dt.timedelta(days=EXPIRING_DAYS),
        "now": now,
    }
    return render("expiring.html", request, context)
