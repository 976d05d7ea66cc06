"""One notification pass: bring the inventory up to date, decide what is due, queue it once.

Deciding and sending are apart: a pass only queues (the outbox's unique key makes a notice
once-only however many processes or restarts plan it, CLM-02) and the transports deliver the
outbox later (server/notify/). So a pass is safe to run from cron, from the server's leader, or
twice at once; the lease only saves the work.

The daily digest is planned the same way: per recipient (an owner, a team's addresses and
webhooks) a summary of their certificates expiring within 30 days and their open weaknesses,
keyed by the day, so it goes out once a day however often it is planned, and not at all when
there is nothing to say.

Requests held for approval (ca/notices/approvals.py) are planned in every pass too, and alone by
``plan_approvals`` on the server's short approvals period (server/notify/jobs.py).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ca.inventory.model import InventoryRecord
from ca.inventory.scans import CurrentFinding
from ca.notices import approvals, candidates
from ca.notices.messages import approval_notice, digest_notice, endpoint_notice, expiry_notice, weakness_notice
from ca.notices.outbox import Message, OutboxStore
from ca.notices.rules import (
    LEVELS,
    WEAK_ENDPOINT_CODES,
    Route,
    due_expiry,
    escalation_levels,
    renewed,
    routes,
)
from ca.notices.settings import NotificationSettings

if TYPE_CHECKING:
    from ca.service import CertificateAuthority

log = logging.getLogger("tetra.notify")

DIGEST_WINDOW = dt.timedelta(days=30)


@dataclass(frozen=True)
class PlanResult:
    due: int  # messages decided this pass (queued now or before)
    queued: int  # of those, new in the outbox
    unroutable: int  # notices nobody could be found for (no owner, team or admin route)


@dataclass
class _Digest:
    route: Route
    expiring: list[InventoryRecord] = field(default_factory=list)
    weak: list[tuple[InventoryRecord, str]] = field(default_factory=list)


class NotificationPlanner:
    def __init__(self, ca: CertificateAuthority, settings: NotificationSettings, outbox: OutboxStore) -> None:
        self.ca = ca
        self.settings = settings
        self.outbox = outbox

    async def plan(self, now: dt.datetime) -> PlanResult:
        await self.ca.inventory.sync(now)
        messages: list[Message] = []
        unroutable = 0
        for record, label, levels in await self._expiry_due(now):
            found = routes(record.owner, record.team, levels, self.settings)
            unroutable += not found
            messages += [expiry_notice(record, label, route, now) for route in found]
        for record, rule in await candidates.weak_records(self.ca, now, self.settings):
            levels = list(LEVELS) if rule == "revoked-deployed" else ["owner"]
            found = routes(record.owner, record.team, levels, self.settings)
            unroutable += not found
            messages += [weakness_notice(record, rule, route) for route in found]
        endpoint_messages, missed = await self._endpoint_messages()
        messages += endpoint_messages
        unroutable += missed
        approval_messages, missed = await self._approval_messages(now)
        messages += approval_messages
        unroutable += missed
        if unroutable:
            log.warning("%d notice(s) have no recipient: configure [notifications] admin_email", unroutable)
        queued = await self.outbox.queue(messages, now)
        return PlanResult(len(messages), queued, unroutable)

    async def plan_approvals(self, now: dt.datetime) -> PlanResult:
        """Only the held requests' notices: what the server plans on a short period, so approvers
        hear of a request within seconds while the whole pass runs every ``interval_seconds``.
        It does not warn of notices without a recipient: the whole pass does, less often."""
        messages, unroutable = await self._approval_messages(now)
        return PlanResult(len(messages), await self.outbox.queue(messages, now), unroutable)

    async def digest(self, now: dt.datetime, *, force: bool = False) -> int:
        """Queue today's digests (at or after digest_hour_utc unless forced); returns how many were new."""
        if not force and now.hour < self.settings.digest_hour_utc:
            return 0
        await self.ca.inventory.sync(now)
        soon = await candidates.expiring(self.ca, now, DIGEST_WINDOW)
        later = await candidates.successors(self.ca, soon)
        expiring = [r for r in soon if r.revoked_at is None and not renewed(r, later[r.id])]
        weak = await candidates.weak_records(self.ca, now, self.settings)
        weak += [
            (record, f"weak-endpoint:{finding.code} at {finding.location}")
            for finding, record in await self._endpoint_findings()
            if record is not None
        ]
        boxes: dict[tuple[str, str], _Digest] = {}
        for record in expiring:
            for route in routes(record.owner, record.team, ("owner", "team"), self.settings):
                boxes.setdefault((route.channel, route.recipient), _Digest(route)).expiring.append(record)
        for record, rule in weak:
            for route in routes(record.owner, record.team, ("owner", "team"), self.settings):
                boxes.setdefault((route.channel, route.recipient), _Digest(route)).weak.append((record, rule))
        day = now.date().isoformat()
        messages = [digest_notice(day, box.route, box.expiring, box.weak) for box in boxes.values()]
        return await self.outbox.queue(messages, now)

    async def _expiry_due(self, now: dt.datetime) -> list[tuple[InventoryRecord, str, list[str]]]:
        soon = await candidates.expiring(self.ca, now, candidates.longest_threshold(self.settings))
        due = [(r, d) for r in soon if (d := due_expiry(r, now, self.settings)) is not None]
        later = await candidates.successors(self.ca, [r for r, _ in due])
        return [
            (record, d.threshold.label, escalation_levels(d.passed, self.settings))
            for record, d in due
            if not renewed(record, later[record.id])
        ]

    async def _endpoint_messages(self) -> tuple[list[Message], int]:
        messages: list[Message] = []
        unroutable = 0
        for finding, record in await self._endpoint_findings():
            owner, team = (record.owner, record.team) if record is not None else (None, None)
            found = routes(owner, team, ["owner"], self.settings)
            unroutable += not found
            messages += [endpoint_notice(finding, record, route) for route in found]
        return messages, unroutable

    async def _approval_messages(self, now: dt.datetime) -> tuple[list[Message], int]:
        messages: list[Message] = []
        unroutable = 0
        for request in await approvals.held_requests(self.ca.db):
            for stage in approvals.due_stages(request, now, self.settings):
                found = approvals.approval_routes(request.team, stage, self.settings)
                unroutable += not found
                messages += [approval_notice(request, route, now) for route in found]
        return messages, unroutable

    async def _endpoint_findings(self) -> list[tuple[CurrentFinding, InventoryRecord | None]]:
        """Current weak-endpoint findings, each with the certificate served there when known."""
        records: dict[int, InventoryRecord | None] = {}
        out: list[tuple[CurrentFinding, InventoryRecord | None]] = []
        for finding in await self.ca.scans.current_findings(codes=WEAK_ENDPOINT_CODES):
            record_id = finding.inventory_id
            if record_id is not None and record_id not in records:
                records[record_id] = await self.ca.inventory.get(record_id)
            out.append((finding, records[record_id] if record_id is not None else None))
        return out
