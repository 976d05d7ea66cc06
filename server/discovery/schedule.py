"""Scheduled discovery scans: each runs once per period, whatever the number of server processes.

Every process looks every half minute; a process runs a schedule only while it holds that
schedule's lease (``leases`` table), and only if no scan for the schedule started within its
period (``discovery_scans``, requested by "schedule:<name>"). The lease is held for the scan's
length and released after, so a process that dies mid-scan lets another take over once the
lease expires, and the next process to look sees the finished scan and waits for the next period.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from contextlib import suppress

from ca.revocation import lease
from ca.service import CertificateAuthority
from server.discovery.run import plan_network_scan, scan_files, scan_network
from server.discovery.settings import DiscoverySettings, Schedule
from server.discovery.targets import TargetError

log = logging.getLogger("tetra.discovery")

LOOK_EVERY = 30.0  # seconds between checks for a due schedule
LEASE_TTL = dt.timedelta(minutes=10)  # renewed while a scan runs


def requester(schedule: Schedule) -> str:
    return f"schedule:{schedule.name}"


class DiscoveryScheduler:
    def __init__(self, ca: CertificateAuthority, settings: DiscoverySettings, holder: str) -> None:
        self.ca = ca
        self.settings = settings
        self.holder = holder
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.settings.schedules:
            self._task = asyncio.create_task(self._loop(), name="discovery-schedule")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # a database hiccup: look again next time
                log.exception("discovery schedule check failed")
            await asyncio.sleep(LOOK_EVERY)

    async def tick(self) -> list[int]:
        """Run whatever is due now and this process may run; the ids of the scans it ran."""
        ran = []
        for schedule in self.settings.schedules:
            name = f"discovery:{schedule.name}"
            if not await lease.acquire(self.ca.db, name, self.holder, LEASE_TTL):
                continue
            try:
                if await self._due(schedule):
                    ran.append(await self._run(schedule, name))
            finally:
                await lease.release(self.ca.db, name, self.holder)
        return ran

    async def _due(self, schedule: Schedule) -> bool:
        last = await self.ca.scans.last_started(requester(schedule))
        return last is None or self.ca.clock.now() - last >= schedule.every

    async def _run(self, schedule: Schedule, lease_name: str) -> int:
        renewing = asyncio.create_task(self._renew(lease_name))
        try:
            if schedule.paths:
                summary = await scan_files(self.ca, self.settings, schedule.paths, actor=requester(schedule))
            else:
                try:
                    endpoints = await plan_network_scan(self.settings, schedule.targets, schedule.ports)
                except TargetError as exc:
                    # Config was accepted but the targets are refused now (a name resolving outside
                    # the allow-list): recorded as a failed scan so the schedule does not retry at once.
                    log.error("scheduled scan %s refused: %s", schedule.name, exc)
                    scan_id = await self.ca.scans.start(
                        "network", schedule.targets, actor=requester(schedule), now=self.ca.clock.now()
                    )
                    failed = {"error": str(exc)}
                    now = self.ca.clock.now()
                    await self.ca.scans.finish(
                        scan_id, status="failed", summary=failed, actor=requester(schedule), now=now
                    )
                    return scan_id
                summary = await scan_network(
                    self.ca, self.settings, endpoints, targets=schedule.targets, actor=requester(schedule)
                )
            log.info("scheduled scan %s done: %s", schedule.name, summary.as_dict())
            return summary.scan_id
        finally:
            renewing.cancel()
            with suppress(asyncio.CancelledError):
                await renewing

    async def _renew(self, lease_name: str) -> None:
        while True:
            await asyncio.sleep(LEASE_TTL.total_seconds() / 3)
            await lease.acquire(self.ca.db, lease_name, self.holder, LEASE_TTL)
