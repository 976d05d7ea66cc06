"""Requests held for approval: who must hear of one, and who must hear again when it waits too long.

A request that a profile holds (approval = "manual", from any protocol) is pending in the
``enrollment_requests`` table until an officer decides it. Every pending request has its first
stage due at once ("approvers": the team's approvers, else [notifications.approvals]' own),
and its second once it has waited longer than ``escalate_after`` ("escalation": the escalation
list, else the admins). A stage nobody can be reached at falls through to the next, as the
certificate notices do (ca/notices/rules.py), so a held request is never announced to nobody
without a warning. Decided requests are not read at all, so they get nothing new (a request
decided in the moment between this read and the outbox write can still get its escalation: the
planner reads, then queues, in two transactions, as for every notice).

The stages are keyed like every notice ("approval.pending:<request id>:<stage>:<channel>:
<recipient>", ca/notices/tables.py), which makes each stage once-only per recipient however many
processes plan it or how often they restart (CLM-02).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from functools import partial

from sqlalchemy import select
from sqlalchemy.engine import Connection

from ca.notices.rules import Route
from ca.notices.settings import NotificationSettings
from ca.store.db import Database
from ca.store.tables import enrollment_requests

RULE = "approval.pending"
STAGES = ("approvers", "escalation")
PAGE = 1000
r = enrollment_requests.c


@dataclass(frozen=True)
class HeldRequest:
    """What an approver needs to know of a pending request to decide it."""

    id: int
    protocol: str
    profile: str
    subject: str
    sans: tuple[str, ...]
    requester: str
    team: str | None
    created_at: dt.datetime


async def held_requests(db: Database) -> list[HeldRequest]:
    """Every pending request, oldest first, a page at a time (the status column is indexed)."""
    out: list[HeldRequest] = []
    while True:
        after = out[-1].id if out else 0
        page = await db.read(partial(_page, after=after))
        out += page
        if len(page) < PAGE:
            return out


def _page(conn: Connection, after: int) -> list[HeldRequest]:
    query = (
        select(r.id, r.protocol, r.profile, r.subject, r.sans, r.requester, r.team, r.created_at)
        .where(r.status == "pending", r.id > after)
        .order_by(r.id)
        .limit(PAGE)
    )
    return [
        HeldRequest(
            row.id,
            row.protocol,
            row.profile,
            row.subject,
            tuple(json.loads(row.sans)),
            row.requester,
            row.team,
            row.created_at,
        )
        for row in conn.execute(query)
    ]


def due_stages(request: HeldRequest, now: dt.datetime, settings: NotificationSettings) -> list[str]:
    """The approvers at once; the escalation too once the request has waited longer than
    ``escalate_after``."""
    if now - request.created_at > settings.approvals.escalate_after:
        return list(STAGES)
    return [STAGES[0]]


def approval_routes(team: str | None, stage: str, settings: NotificationSettings) -> list[Route]:
    """Where one stage of a held request's notice goes; an empty answer means nobody at all (not
    the approvers, the escalation list nor the admins) is configured."""
    for candidate in STAGES[STAGES.index(stage) :]:
        emails, webhooks = _recipients(team, candidate, settings)
        if emails or webhooks:
            return [Route(stage, "email", a) for a in emails] + [Route(stage, "webhook", w) for w in webhooks]
    return []


def _recipients(
    team: str | None, stage: str, settings: NotificationSettings
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    approvals = settings.approvals
    if stage == "approvers":
        route = settings.teams.get(team or "")
        if route is not None and (route.approvers_email or route.approvers_webhooks):
            return route.approvers_email, route.approvers_webhooks
        return approvals.email, approvals.webhooks
    if approvals.escalate_email or approvals.escalate_webhooks:
        return approvals.escalate_email, approvals.escalate_webhooks
    return settings.admin_email, settings.admin_webhooks
