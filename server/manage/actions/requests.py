"""The approval queue: requests that profiles with `approval = "manual"` hold, from every
protocol (ACME, EST, SCEP, CMP, the management API), and their decisions.

A team-bound principal sees and decides its teams' requests only; another team's request is
refused exactly as a missing one (OPS-02). Approving issues at once (ca.approve); the client
that asked learns it at its next poll (ACME order, EST retry, SCEP CertPoll, CMP pollReq).
On a profile with `four_eyes`, whoever made the request may not approve it: refused, and the
attempt audited as `request.approval_refused` (OPS-03).
"""

from __future__ import annotations

from ca.audit import AuditEvent
from ca.enrollment import Issued
from ca.operators.principal import Principal
from ca.operators.roles import Permission
from ca.records import RequestRecord
from ca.service import CertificateAuthority
from server.manage.actions.access import require, visible
from server.manage.actions.errors import Conflict, FourEyesRefused, NotVisible

WHAT = "request"
STATUSES = ("pending", "approved", "rejected")


async def queue(
    ca: CertificateAuthority, principal: Principal, *, status: str | None, after_id: int | None, limit: int
) -> list[RequestRecord]:
    require(principal, Permission.REQUESTS_READ)
    teams = None if principal.all_teams else principal.teams
    return await ca.requests.list(status, limit, after_id=after_id, teams=teams)


async def show(ca: CertificateAuthority, principal: Principal, request_id: int) -> RequestRecord:
    require(principal, Permission.REQUESTS_READ)
    return await _visible_request(ca, principal, request_id)


async def approve(ca: CertificateAuthority, principal: Principal, request_id: int) -> Issued:
    require(principal, Permission.REQUESTS_DECIDE)
    record = await _pending(ca, principal, request_id)
    profile = ca.profiles.get(record.profile)
    if profile is not None and profile.four_eyes and record.requester == principal.actor:
        await ca.audit.append(
            AuditEvent(principal.actor, "request.approval_refused", f"{WHAT}/{request_id}", {"rule": "four_eyes"})
        )
        raise FourEyesRefused(f"profile {record.profile} needs four eyes: someone else must approve your request")
    return await ca.approve(request_id, principal.actor)


async def reject(ca: CertificateAuthority, principal: Principal, request_id: int, reason: str) -> RequestRecord:
    require(principal, Permission.REQUESTS_DECIDE)
    await _pending(ca, principal, request_id)
    await ca.reject(request_id, principal.actor, reason)
    return await _visible_request(ca, principal, request_id)


async def _pending(ca: CertificateAuthority, principal: Principal, request_id: int) -> RequestRecord:
    record = await _visible_request(ca, principal, request_id)
    if record.status != "pending":
        raise Conflict(f"request {request_id} is already {record.status}")
    return record


async def _visible_request(ca: CertificateAuthority, principal: Principal, request_id: int) -> RequestRecord:
    record = await ca.requests.get(request_id)
    if record is None:
        raise NotVisible(WHAT)
    visible(principal, record.team, WHAT)
    return record
