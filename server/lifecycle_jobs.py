"""Background work for certificate lifecycle management, per server process.

- the inventory mirror: what the CA issued reaches the inventory within INVENTORY_SYNC_EVERY
  seconds, even when nobody runs an inventory command (any process may run it: its writes are
  idempotent, ca/inventory/sync.py);
- scheduled discovery scans, one process at a time (server/discovery/schedule.py);
- notifications when [notifications] enabled: planned by one process, delivered by all
  (server/notify/jobs.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from contextlib import suppress

from ca.service import CertificateAuthority
from server.config import ServerConfig
from server.discovery.schedule import DiscoveryScheduler
from server.notify.jobs import NotificationJobs, start_notification_jobs

log = logging.getLogger("tetra.lifecycle")

INVENTORY_SYNC_EVERY = 30.0


class LifecycleJobs:
    def __init__(self, ca: CertificateAuthority, config: ServerConfig, *, worker: int = 0) -> None:
        self.ca = ca
        holder = f"{socket.gethostname()}:{os.getpid()}:{worker}"
        self.discovery = DiscoveryScheduler(ca, config.discovery, holder)
        self.notifications = config.notifications
        self.notices: NotificationJobs | None = None
        self._sync: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._sync = asyncio.create_task(self._mirror(), name="inventory-sync")
        self.discovery.start()
        self.notices = start_notification_jobs(self.ca, self.notifications)

    async def stop(self) -> None:
        if self.notices is not None:
            await self.notices.stop()
        await self.discovery.stop()
        if self._sync is not None:
            self._sync.cancel()
            with suppress(asyncio.CancelledError):
                await self._sync

    async def _mirror(self) -> None:
        while True:
            try:
                await self.ca.inventory.sync(self.ca.clock.now())
            except Exception:  # the database is away: the next round catches up
                log.warning("inventory sync failed; retrying in %.0f s", INVENTORY_SYNC_EVERY, exc_info=True)
            await asyncio.sleep(INVENTORY_SYNC_EVERY)
