"""Health at a glance: the readiness checks (/readyz's), how fresh each CA's CRL and the stored
OCSP answers are, and the queues an operator should watch (requests held for approval, the
notification outbox)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from ca.notices.outbox import OutboxStore
from ca.operators.roles import Permission
from ca.revocation.crl_store import latest
from ca.revocation.tables import ocsp_responses
from ca.service import CertificateAuthority
from server.manage.actions import requests
from server.manage.ui.context import NAV, authority, first_page, render, require_every_team, viewer
from server.readiness import readiness_checks

PENDING_SHOWN = 1000  # the count stops there ("1000+")


@dataclass(frozen=True)
class CrlFreshness:
    issuer: str
    number: int | None
    this_update: dt.datetime | None
    next_update: dt.datetime | None
    stale: bool  # none published, or its nextUpdate has passed


@dataclass(frozen=True)
class OcspFreshness:
    answers: int
    stale: int  # stored answers past their nextUpdate
    earliest_next_update: dt.datetime | None


async def crl_freshness(ca: CertificateAuthority, now: dt.datetime) -> list[CrlFreshness]:
    def read(conn: Any) -> list[CrlFreshness]:
        out = []
        for issuer in ca.issuer_names:
            crl = latest(conn, issuer, "full", "complete", with_der=False)
            if crl is None:
                out.append(CrlFreshness(issuer, None, None, None, True))
            else:
                out.append(CrlFreshness(issuer, crl.number, crl.this_update, crl.next_update, crl.next_update <= now))
        return out

    return list(await ca.db.read(read))


async def ocsp_freshness(ca: CertificateAuthority, now: dt.datetime) -> OcspFreshness:
    o = ocsp_responses.c
    query = select(func.count(), func.count().filter(o.next_update <= now), func.min(o.next_update))

    def read(conn: Any) -> OcspFreshness:
        answers, stale, earliest = conn.execute(query.select_from(ocsp_responses)).one()
        return OcspFreshness(int(answers), int(stale), earliest)

    return await ca.db.read(read)


async def health(request: web.Request) -> web.Response:
    if not NAV[0].shown_to(viewer(request).principal):  # the landing page: send others to theirs
        raise web.HTTPSeeOther(first_page(viewer(request).principal))
    seen = require_every_team(request, Permission.CAS_READ)
    ca = authority(request)
    now = ca.clock.now()
    checks = await readiness_checks(ca)
    pending = await requests.queue(ca, seen.principal, status="pending", after_id=None, limit=PENDING_SHOWN)
    outbox = await OutboxStore(ca.db).status(limit=0)
    return render(
        "health.html",
        request,
        {
            "now": now,
            "checks": sorted(checks.items()),
            "ready": all(v == "ok" for v in checks.values()),
            "crls": await crl_freshness(ca, now),
            "ocsp": await ocsp_freshness(ca, now),
            "pending": len(pending),
            "pending_more": len(pending) >= PENDING_SHOWN,
            "outbox": outbox,
        },
    )
