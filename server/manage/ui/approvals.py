"""The approval queue: requests a profile holds (approval = "manual") from any protocol, each
with approve and reject (with a reason) forms. With htmx the queue refreshes itself and a
decision replaces its row in place; without it the forms post and the page reloads.

The decision, who may make it (four eyes, teams) and its audit event belong to the management
action called here; the device learns the outcome from its own protocol (a SCEP CertPoll, an
EST retry, an ACME order, a CMP pollReq).
"""

from __future__ import annotations

from aiohttp import web

from ca.errors import CAError
from ca.operators.roles import Permission
from server.manage.ui.certificates import _partial
from server.manage.ui.context import authority, render, require

SHOWN = 200


async def queue(request: web.Request) -> web.Response:
    seen = require(request, Permission.REQUESTS_READ)
    pending = await authority(request).requests.list(status="pending", limit=SHOWN)
    context = {
        "pending": pending,
        "can_decide": seen.principal.can(Permission.REQUESTS_DECIDE),
        "message": request.query.get("done", ""),
    }
    template = "approvals_rows.html" if _partial(request) else "approvals.html"
    return render(template, request, context)


async def _decided(request: web.Request, request_id: int, outcome: str) -> web.Response:
    if _partial(request):
        return render("approvals_decided.html", request, {"request_id": request_id, "outcome": outcome})
    raise web.HTTPSeeOther(f"/ui/approvals?done=request+{request_id}+{outcome.replace(' ', '+')}")


async def approve(request: web.Request) -> web.Response:
    seen = require(request, Permission.REQUESTS_DECIDE)
    request_id = int(request.match_info["id"])
    try:
        await authority(request).approve(request_id, seen.principal.actor)
    except CAError as exc:
        raise web.HTTPConflict(text=f"request {request_id} not approved: {exc.detail}\n") from None
    return await _decided(request, request_id, "approved")


async def reject(request: web.Request) -> web.Response:
    seen = require(request, Permission.REQUESTS_DECIDE)
    request_id = int(request.match_info["id"])
    reason = str((await request.post()).get("reason", "")).strip()
    if not reason:
        raise web.HTTPBadRequest(text="a rejection needs a reason\n")
    try:
        await authority(request).reject(request_id, seen.principal.actor, reason[:500])
    except CAError as exc:
        raise web.HTTPConflict(text=f"request {request_id} not rejected: {exc.detail}\n") from None
    return await _decided(request, request_id, "rejected")
