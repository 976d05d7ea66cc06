"""The approval queue: requests a profile holds (approval = "manual") from any protocol, each
with approve and reject (with a reason) forms. With htmx the queue refreshes itself and a
decision replaces its row in place; without it the forms post and the page reloads.

The queue, the decision, who may make it (four eyes, teams) and its audit event belong to the
management actions (server/manage/actions/requests.py); the device learns the outcome from its
own protocol (a SCEP CertPoll, an EST retry, an ACME order, a CMP pollReq).
"""

from __future__ import annotations

from aiohttp import web

from ca.operators.roles import Permission
from server.manage.actions import requests as actions
from server.manage.ui.certificates import partial
from server.manage.ui.context import authority, render, viewer

SHOWN = 200
REASON_MAX = 500


async def queue(request: web.Request) -> web.Response:
    seen = viewer(request)
    pending = await actions.queue(authority(request), seen.principal, status="pending", after_id=None, limit=SHOWN)
    context = {
        "pending": pending,
        "can_decide": seen.principal.can(Permission.REQUESTS_DECIDE),
        "message": request.query.get("done", "")[:60],
    }
    return render("approvals_rows.html" if partial(request) else "approvals.html", request, context)


async def _decided(request: web.Request, request_id: int, outcome: str) -> web.Response:
    if partial(request):
        return render("approvals_decided.html", request, {"request_id": request_id, "outcome": outcome})
    raise web.HTTPSeeOther(f"/ui/approvals?done=request+{request_id}+{outcome}")


async def approve(request: web.Request) -> web.Response:
    request_id = int(request.match_info["id"])
    await actions.approve(authority(request), viewer(request).principal, request_id)
    return await _decided(request, request_id, "approved")


async def reject(request: web.Request) -> web.Response:
    request_id = int(request.match_info["id"])
    reason = str((await request.post()).get("reason", "")).strip()
    if not reason:
        raise web.HTTPBadRequest(text="a rejection needs a reason\n")
    await actions.reject(authority(request), viewer(request).principal, request_id, reason[:REASON_MAX])
    return await _decided(request, request_id, "rejected")
