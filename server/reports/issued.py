"""The issued report: what Tetra signed per week, per issuing CA and protocol, and whether
renewals came in time.

A renewal is a record that replaces another (``replaces_id``: the ledger's renewal lineage, or
an operator's `inventory edit --replaces`); it is on time if it became valid (``not_before``)
before the certificate it replaces expired, and late otherwise, when there was a gap in which
the service had no valid certificate. Weeks are ISO weeks in UTC, named by their Monday.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ca.inventory.model import InventoryFilter, InventoryRecord
from server.reports.data import all_records, issuer_of
from server.reports.model import Chart, Report, Series, columns_of, week_of

if TYPE_CHECKING:
    from ca.service import CertificateAuthority


@dataclass(frozen=True)
class IssuedRow:
    week: str  # the Monday the week starts on, YYYY-MM-DD
    issuer: str
    protocol: str
    issued: int
    renewals: int
    renewals_on_time: int
    renewals_late: int


@dataclass(frozen=True)
class _Issue:
    week: str
    issuer: str
    protocol: str
    renewal: str | None  # on-time | late | None (not a renewal)


async def issued_report(ca: CertificateAuthority, *, weeks: int, now: dt.datetime) -> Report:
    """Certificates Tetra issued in the last ``weeks`` weeks (this one included)."""
    store = ca.inventory
    await store.sync(now)
    first = week_of(now) - dt.timedelta(weeks=weeks - 1)
    start = dt.datetime.combine(first, dt.time(), dt.UTC)
    issues: list[_Issue] = []
    # Whatever was issued since the start is still valid at the start: the expiry index narrows it.
    for r in await all_records(store, InventoryFilter(valid_at=start)):
        if r.certificate_id is None or not start <= r.not_before <= now:
            continue
        week = week_of(r.not_before).isoformat()
        issues.append(_Issue(week, issuer_of(r), r.protocol or "unknown", await _renewal(ca, r)))
    labels = tuple((first + dt.timedelta(weeks=n)).isoformat() for n in range(weeks))
    return Report(
        kind="issued",
        title=f"Certificates issued by Tetra in the last {weeks} weeks",
        generated_at=now,
        parameters={"weeks": weeks},
        columns=columns_of(IssuedRow),
        rows=_rows(issues),
        charts=_charts(labels, issues),
    )


async def _renewal(ca: CertificateAuthority, r: InventoryRecord) -> str | None:
    if r.replaces_id is None:
        return None
    replaced = await ca.inventory.get(r.replaces_id)
    if replaced is None:
        return None
    return "on-time" if r.not_before < replaced.not_after else "late"


def _rows(issues: list[_Issue]) -> tuple[IssuedRow, ...]:
    groups: dict[tuple[str, str, str], list[_Issue]] = {}
    for issue in issues:
        groups.setdefault((issue.week, issue.issuer, issue.protocol), []).append(issue)
    return tuple(
        IssuedRow(
            week=week,
            issuer=issuer,
            protocol=protocol,
            issued=len(group),
            renewals=sum(i.renewal is not None for i in group),
            renewals_on_time=sum(i.renewal == "on-time" for i in group),
            renewals_late=sum(i.renewal == "late" for i in group),
        )
        for (week, issuer, protocol), group in sorted(groups.items())
    )


def _charts(labels: tuple[str, ...], issues: list[_Issue]) -> tuple[Chart, ...]:
    def per_week(keep: list[_Issue]) -> tuple[int, ...]:
        counts = Counter(i.week for i in keep)
        return tuple(counts[label] for label in labels)

    protocols = sorted({i.protocol for i in issues})
    by_issuer = Counter(i.issuer for i in issues)
    issuers = tuple(sorted(by_issuer, key=lambda k: (-by_issuer[k], k)))
    return (
        Chart(
            "Issued per week (week starting), per protocol",
            labels,
            tuple(Series(p, per_week([i for i in issues if i.protocol == p])) for p in protocols),
            stacked=True,
        ),
        Chart(
            "Renewals per week: on time and late",
            labels,
            (
                Series("on time", per_week([i for i in issues if i.renewal == "on-time"])),
                Series("late", per_week([i for i in issues if i.renewal == "late"])),
            ),
            stacked=True,
        ),
        Chart(
            "Issued per issuing CA",
            issuers,
            (Series("certificates", tuple(by_issuer[k] for k in issuers)),),
            horizontal=True,
        ),
    )
