"""Background jobs for revocation: the feed, CRL publication and OCSP upkeep.

Every process follows the revocation/issuance feed (the audit log, see
ca/revocation/feed.py) every few hundred milliseconds, so a revocation made by any
process (`tetra revoke`, ACME revokeCert, CMP rr, another server) is answered by
this process's OCSP within a second. Jobs that must run once hold a lease in the
`leases` table: CRL regeneration (batched after revocations, and on schedule),
OCSP refresh before nextUpdate, and repair after crashes: settling certificate
intents a crash left in 'signing' (ca/recovery.py) when it takes the lease and every
minute after. The leader also stores how far it has read the feed, so a restarted
leader resumes instead of skipping. The lease holder's name survives a restart
(server/lease_identity.py), so a restarted leader takes its lease back at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from ca.errors import CAError
from ca.recovery import settle_stale_intents, store_unrecorded
from ca.revocation import feed, lease
from ca.revocation.crl import COMPLETE, CrlService
from ca.revocation.ocsp import OcspService
from ca.revocation.pointers import install_pointers
from ca.revocation.settings import CrlSettings
from ca.service import CertificateAuthority
from protocols.base import RevocationServices
from server.config import ServerConfig
from server.lease_identity import HolderClaim, claim_holder
from server.wiring import crl_settings, ocsp_settings

log = logging.getLogger("tetra.jobs")

LEASE = "revocation-jobs"
CURSOR = "revocation-feed"
RECONCILE_EVERY = 600.0  # seconds between OCSP repair sweeps on the leader
RECOVER_EVERY = 60.0  # seconds between passes settling intents left in 'signing' (ST-17)
STOP_GRACE = 10.0  # seconds a running job gets to finish at shutdown
REGISTRY_EVERY = 1.0  # seconds between reads of the CA registry (a new generation, an activation time)


class RevocationJobs:
    def __init__(
        self,
        ca: CertificateAuthority,
        crl_settings: CrlSettings,
        ocsp: OcspService | None,
        crl: CrlService | None,
        *,
        poll_interval: float = 0.25,
        holder: str | None = None,
        signing_grace: dt.timedelta = dt.timedelta(minutes=2),
    ) -> None:
        self.ca = ca
        self.crl_settings = crl_settings
        self.ocsp = ocsp
        self.crl = crl
        self.poll_interval = poll_interval
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.signing_grace = signing_grace
        self.claim: HolderClaim | None = None  # the lock that keeps a stable holder name ours
        self.leader = False
        self.position = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: dict[str, float] = {}  # issuer -> monotonic time to start a batched regeneration
        self._running: dict[str, asyncio.Task[None]] = {}
        self._durations: dict[str, float] = {}
        self._last_reconcile = 0.0
        self._stopping = asyncio.Event()

    # -- life cycle ------------------------------------------------------------------------
    async def start(self, *, background: bool = True) -> None:
        """Prepare issuers and services, catch up with the feed, then run the loops."""
        await install_pointers(self.ca, self.crl_settings)
        if self.crl is not None:
            await self.crl.start()
        if self.ocsp is not None:
            await self.ocsp.start()
        cursor = await self.ca.db.read(partial(feed.read_cursor, name=CURSOR))
        self.position = cursor if cursor is not None else await self.ca.db.read(feed.head)
        await self.lease_tick()
        while await self.feed_tick() >= 1000:
            pass  # catch up before serving
        await self.maintenance_tick(wait=True)  # a new CA serves its first CRLs from the start
        if background:
            self._tasks = [
                asyncio.create_task(self._every(self.poll_interval, self.feed_tick), name="revocation-feed"),
                asyncio.create_task(
                    self._every(self.crl_settings.lease.total_seconds() / 3, self.lease_tick), name="revocation-lease"
                ),
                asyncio.create_task(
                    self._every(self.crl_settings.check_interval.total_seconds(), self.maintenance_tick),
                    name="revocation-maintenance",
                ),
                asyncio.create_task(self._every(RECOVER_EVERY, self.recovery_tick), name="intent-recovery"),
                asyncio.create_task(self._every(REGISTRY_EVERY, self.registry_tick), name="ca-registry"),
            ]

    async def stop(self) -> None:
        """Let running ticks finish (cancelling a task inside a database call can leave its
        connection half-used while the pool is being closed), then cancel what is left."""
        self._stopping.set()
        pending = [*self._tasks, *self._running.values()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=STOP_GRACE)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self._tasks.clear()
        self._running.clear()
        if self.leader:
            try:
                await asyncio.wait_for(lease.release(self.ca.db, LEASE, self.holder), STOP_GRACE)
            except (TimeoutError, CAError):
                pass  # it expires by itself
        if self.claim is not None:
            self.claim.release()

    async def _every(self, seconds: float, tick: Callable[[], Awaitable[Any]]) -> None:
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), seconds)
                return
            except TimeoutError:
                pass
            try:
                await tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("revocation job %s failed; retrying", getattr(tick, "__name__", tick))

    # -- ticks ---------------------------------------------------------------------------------
    async def registry_tick(self) -> None:
        """Re-read the CA registry (server/ca_registry.py). A generation another process added is
        opened here and gets its CRL pointers, CRLs and OCSP responder; a scheduled activation or a
        revocation reaches this process's issuers within a second."""
        if self.ca.sync_registry is None:
            return
        added = await self.ca.sync_registry()
        if not added:
            return
        log.info("CA registry: now serving %s", ", ".join(added))
        await install_pointers(self.ca, self.crl_settings)
        if self.crl is not None:
            await self.crl.start()
        if self.ocsp is not None:
            await self.ocsp.track(added)
        if self.leader:
            await self.maintenance_tick(wait=True)  # the new generation's first CRLs

    async def lease_tick(self) -> None:
        was = self.leader
        try:
            self.leader = await lease.acquire(self.ca.db, LEASE, self.holder, self.crl_settings.lease)
        except CAError as exc:
            log.warning("lease %s: %s", LEASE, exc.detail)
            self.leader = False
        if self.ocsp is not None:
            self.ocsp.presign_issued = self.leader
        if self.leader and not was:
            log.info("this process (%s) now runs the revocation jobs", self.holder)
            self._last_reconcile = 0.0  # a new leader repairs what happened without one
            await self.recovery_tick()  # and settles what a crashed process left in 'signing'

    async def recovery_tick(self) -> None:
        """Every process stores the certificates it signed but could not record; the leader
        also settles intents older than the signing grace (ca/recovery.py, ST-17)."""
        try:
            if self.leader:
                settled = await settle_stale_intents(self.ca, self.signing_grace)
            else:
                settled = await store_unrecorded(self.ca)
        except CAError as exc:
            log.warning("intent recovery: %s; retrying in %.0f s", exc.detail, RECOVER_EVERY)
            return
        except Exception:  # never let it stop the lease tick (or start-up) that called it
            log.exception("intent recovery failed; retrying in %.0f s", RECOVER_EVERY)
            return
        if settled:  # each row has had its WARNING line on tetra.recovery
            revoked = sum(1 for s in settled if s.outcome == "revoked")
            log.info("intent recovery settled %d row(s), %d of them revoked", len(settled), revoked)

    async def feed_tick(self) -> int:
        """Apply new feed events; returns how many were read."""
        position = self.position
        events = await self.ca.db.read(
            partial(feed.events_since, after=position, actions=(feed.REVOKED, feed.ISSUED), limit=1000)
        )
        if self.ocsp is not None:
            await self.ocsp.apply(events)
        if events:
            if self.crl is not None:
                for event in events:
                    if event.action == feed.REVOKED and event.issuer in self.ca.issuers:
                        self.schedule_crl(event.issuer)
            self.position = events[-1].seq
            if self.leader:
                now = self.ca.clock.now()
                await self.ca.db.write(partial(feed.write_cursor, name=CURSOR, position=self.position, now=now))
        self._start_due_crls()
        return len(events)

    def schedule_crl(self, issuer: str) -> None:
        """Batch revocations: regenerate once, so that the CRL is out batch_delay after the
        first revocation. The start is brought forward by the last generation's duration (plus
        a fifth) and two poll intervals (seeing the revocation, and the tick that starts the work)."""
        if issuer in self._pending:
            return
        lead = 1.2 * self._durations.get(issuer, 0.0) + 2 * self.poll_interval
        self._pending[issuer] = time.monotonic() + max(0.0, self.crl_settings.batch_delay.total_seconds() - lead)

    def _start_due_crls(self) -> None:
        if not self.leader or self.crl is None:
            return
        now = time.monotonic()
        for issuer, deadline in list(self._pending.items()):
            if deadline <= now and issuer not in self._running:
                del self._pending[issuer]
                kind = "delta" if self.crl_settings.delta else COMPLETE
                self._spawn(issuer, kind)

    def _spawn(self, issuer: str, kind: str) -> None:
        task = asyncio.create_task(self._regenerate(issuer, kind), name=f"crl-{issuer}")
        self._running[issuer] = task
        task.add_done_callback(partial(self._finished, issuer))

    def _finished(self, issuer: str, _task: asyncio.Task[None]) -> None:
        self._running.pop(issuer, None)

    async def _regenerate(self, issuer: str, kind: str) -> None:
        assert self.crl is not None
        started = time.monotonic()
        try:
            if kind == COMPLETE:
                await self.crl.generate(issuer)
            else:
                await self.crl.generate_deltas(issuer)
            self._durations[issuer] = time.monotonic() - started
        except Exception:
            log.exception("issuer %s: CRL generation failed; retrying at the next check", issuer)

    async def maintenance_tick(self, *, wait: bool = False) -> None:
        """All processes: rotate responder certificates. The leader: scheduled CRLs, OCSP
        refresh before nextUpdate, and the repair sweep."""
        if self.ocsp is not None:
            await self.ocsp.responders.rotate_due()
        if not self.leader:
            return
        if self.crl is not None:
            for issuer, kind in (await self.crl.due()).items():
                if wait:
                    await self._regenerate(issuer, kind)
                elif issuer not in self._running:
                    self._spawn(issuer, kind)
        if self.ocsp is not None:
            refreshed = await self.ocsp.refresh_due()
            if refreshed:
                log.info("refreshed %d OCSP responses", refreshed)
            if time.monotonic() - self._last_reconcile > RECONCILE_EVERY:
                repaired = await self.ocsp.reconcile()
                self._last_reconcile = time.monotonic()
                if repaired:
                    log.info("OCSP repair: signed %d missing or stale responses", repaired)


async def start_jobs(
    ca: CertificateAuthority, config: ServerConfig, revocation: RevocationServices, *, worker: int = 0
) -> RevocationJobs:
    """Start the revocation jobs over the services the protocols were handed (server/wiring.py),
    under this worker's stable lease holder name when no live process holds it."""
    ocsp = ocsp_settings(config)
    claim = claim_holder(config.source, worker)
    jobs = RevocationJobs(
        ca,
        crl_settings(config),
        revocation.ocsp,
        revocation.crl,
        poll_interval=ocsp.poll_interval.total_seconds(),
        holder=claim.holder,
        signing_grace=ocsp.signing_grace,
    )
    jobs.claim = claim
    try:
        await jobs.start()
    except BaseException:
        claim.release()
        raise
    return jobs
