"""The notification jobs of one server process.

Every process delivers what is due in the outbox every few seconds (claims keep two processes off
the same row). Planning reads the whole inventory, so only the holder of the "notifications"
lease does it, every ``interval_seconds``, with the daily digest; if the leader dies its lease runs
out and another process takes over. Planning twice would be harmless (the outbox keys), only
wasted work.

Requests held for approval are planned by the leader on their own short period (APPROVALS_EVERY,
30 s), besides the full pass: the full pass may run only every few minutes and reads the whole
inventory, while an approver should hear of a held request promptly and finding them is one
indexed query on the requests' status. Polling is the simplest correct way: waking the planner
from the CA core when it holds a request would reach only the process that held it (EST, SCEP,
CMP or ACME may be served by any worker, the leader elsewhere), and after a restart nothing would
wake it for the requests already waiting; the poll finds them all, and the outbox keys keep it
once-only. Escalation therefore goes out at most one period after ``escalate_after``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from ca.errors import CAError
from ca.notices.outbox import OutboxStore
from ca.notices.planner import NotificationPlanner
from ca.notices.settings import NotificationSettings
from ca.revocation import lease
from ca.service import CertificateAuthority
from server.notify.delivery import deliver_due

log = logging.getLogger("tetra.notify")

LEASE = "notifications"
DELIVER_EVERY = 5.0  # seconds
APPROVALS_EVERY = 30.0  # seconds: how late an approver may hear of a held request
STOP_GRACE = 10.0


class NotificationJobs:
    def __init__(
        self,
        ca: CertificateAuthority,
        settings: NotificationSettings,
        *,
        holder: str | None = None,
        deliver_every: float = DELIVER_EVERY,
        approvals_every: float = APPROVALS_EVERY,
    ) -> None:
        self.ca = ca
        self.deliver_every = deliver_every
        self.approvals_every = approvals_every
        self.settings = settings
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.outbox = OutboxStore(ca.db, max_attempts=settings.max_attempts)
        self.planner = NotificationPlanner(ca, settings, self.outbox)
        self.leader = False
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._every(0.0, self.settings.interval_seconds, self.plan_tick), name="notify-plan"),
            asyncio.create_task(
                self._every(self.deliver_every, self.deliver_every, self.deliver_tick), name="notify-deliver"
            ),
            asyncio.create_task(
                self._every(self.approvals_every, self.approvals_every, self.approvals_tick), name="notify-approvals"
            ),
        ]

    async def stop(self) -> None:
        self._stopping.set()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=STOP_GRACE)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self._tasks.clear()
        if self.leader:
            try:
                await asyncio.wait_for(lease.release(self.ca.db, LEASE, self.holder), STOP_GRACE)
            except (TimeoutError, CAError):
                pass  # it runs out by itself

    async def plan_tick(self) -> None:
        if not await self._lead():
            return
        now = self.ca.clock.now()
        result = await self.planner.plan(now)
        digests = await self.planner.digest(now)
        if result.queued or digests:
            log.info("notifications: %d new notice(s), %d digest(s) queued", result.queued, digests)

    async def approvals_tick(self) -> None:
        if not await self._lead():
            return
        result = await self.planner.plan_approvals(self.ca.clock.now())
        if result.queued:
            log.info("notifications: %d held request notice(s) queued", result.queued)

    async def _lead(self) -> bool:
        """Take or renew the planning lease; whether this process plans."""
        ttl = dt.timedelta(seconds=max(3 * self.settings.interval_seconds, 60.0))
        self.leader = await lease.acquire(self.ca.db, LEASE, self.holder, ttl)
        return self.leader

    async def deliver_tick(self) -> None:
        result = await deliver_due(self.outbox, self.settings, self.holder, self.ca.clock.now())
        if result.delivered or result.failed or result.given_up:
            log.info(
                "notifications: %d delivered, %d to retry, %d given up",
                result.delivered,
                result.failed,
                result.given_up,
            )

    async def _every(self, first: float, seconds: float, tick: Callable[[], Awaitable[Any]]) -> None:
        wait = first
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), wait)
                return
            except TimeoutError:
                pass
            wait = seconds
            try:
                await tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notification job %s failed; retrying", getattr(tick, "__name__", tick))


def start_notification_jobs(ca: CertificateAuthority, settings: NotificationSettings) -> NotificationJobs | None:
    """The jobs when [notifications] enabled = true, started; else None."""
    if not settings.enabled:
        return None
    jobs = NotificationJobs(ca, settings)
    jobs.start()
    return jobs
