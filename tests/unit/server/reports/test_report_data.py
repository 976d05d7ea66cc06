"""The four reports gathered from a real CA's inventory, on SQLite and PostgreSQL: Tetra's own
certificates (mirrored from the ledger) and imported ones, sightings, a revocation, a scan's
finding and renewals on time and late (report_scenario.py)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ca.service import CertificateAuthority
from server.reports.data import expiring_report, inventory_report, weak_report
from server.reports.issued import issued_report
from server.reports.model import week_of
from tests.unit.server.reports.report_scenario import baseline_issuers, build


async def test_expiring_lists_unrevoked_certificates_by_expiry(ca: CertificateAuthority, tmp_path: Path) -> None:
    """Within 30 days: the expired import (flagged), the legacy import, then A; the revoked R and
    the 90-day certificates are not listed. Owner, team, application, locations and renewal come
    along."""
    s = await build(ca, tmp_path)
    report = await expiring_report(ca, days=30, now=s.now)
    rows = {row.inventory_id: row for row in report.rows}
    assert [row.inventory_id for row in report.rows] == [s.expired, s.legacy, s.a]
    assert rows[s.expired].expired and rows[s.expired].days_left == -4
    assert not rows[s.legacy].expired and rows[s.legacy].days_left == 9
    assert rows[s.legacy].subject == "CN=old.legacy.example.org" and rows[s.legacy].owner == "bob@example.com"
    assert rows[s.legacy].locations == ("legacy.example.org:443",) and rows[s.legacy].source == "imported"
    a = rows[s.a]
    assert (a.owner, a.team, a.application) == ("alice@example.com", "web", "shop")
    assert a.locations == ("10.0.0.1:443",) and a.declared_location == "shop-lb" and a.renewal_method == "acme"
    assert a.issuer == ca.default_issuer and rows[s.legacy].declared_location is None
    assert a.names == ("dns:soon.example.com",) and 18 <= a.days_left <= 19
    (chart,) = report.charts
    counts = dict(zip(chart.labels, chart.series[0].values, strict=True))
    assert counts["expired"] == 1 and sum(counts.values()) == 3
    assert counts[week_of(rows[s.a].not_after).isoformat()] >= 1
    assert chart.labels[1] == week_of(s.now).isoformat() and len(chart.labels) in (6, 7)

    assert [row.inventory_id for row in (await expiring_report(ca, days=0, now=s.now)).rows] == [s.expired]


async def test_weak_report(ca: CertificateAuthority, tmp_path: Path) -> None:
    """The legacy import's RSA-1024 key and SHA-1 signature, R revoked but still seen, the Tetra
    certificates nobody has deployed, and the scan's TLS 1.0 finding at the legacy endpoint."""
    s = await build(ca, tmp_path)
    report = await weak_report(ca, now=s.now)
    by_problem: dict[str, set[int | None]] = {}
    for row in report.rows:
        by_problem.setdefault(row.problem, set()).add(row.inventory_id)
    assert by_problem.keys() == {"weak-key", "weak-signature", "revoked-deployed", "never-deployed", "protocol-tls1.0"}
    assert by_problem["weak-key"] == by_problem["weak-signature"] == {s.legacy}
    assert by_problem["revoked-deployed"] == {s.r}
    assert by_problem["never-deployed"] - s.baseline == {s.b, s.c}
    assert by_problem["protocol-tls1.0"] == {s.legacy}
    severities = [row.severity for row in report.rows]
    assert severities == sorted(severities, key=["critical", "warning", "info"].index)
    finding = next(row for row in report.rows if row.problem == "protocol-tls1.0")
    assert finding.locations == ("legacy.example.org:443",) and finding.subject == "CN=old.legacy.example.org"
    assert finding.detail == "accepts TLS 1.0" and finding.owner == "bob@example.com"
    weak_key = next(row for row in report.rows if row.problem == "weak-key")
    assert weak_key.detail == "RSA key of 1024 bits (under 2048)"
    (chart,) = report.charts
    totals = Counter(row.problem for row in report.rows)
    drawn = {label: sum(s.values[n] for s in chart.series) for n, label in enumerate(chart.labels)}
    assert drawn == totals and chart.labels[0] == "never-deployed"


async def test_inventory_report(ca: CertificateAuthority, tmp_path: Path) -> None:
    """Every unexpired certificate (not the expired import), with its key, signature, status,
    owner and locations; charts per issuer, key type and status."""
    s = await build(ca, tmp_path)
    report = await inventory_report(ca, now=s.now)
    rows = {row.inventory_id: row for row in report.rows}
    assert set(rows) == s.baseline | {s.a, s.b, s.c, s.r, s.legacy}
    legacy = rows[s.legacy]
    assert (legacy.key_algorithm, legacy.key_size, legacy.signature_algorithm) == ("rsa", 1024, "sha1WithRSAEncryption")
    assert legacy.issuer == legacy.issuer_dn == "CN=old.legacy.example.org" and legacy.status == "expiring"
    assert rows[s.r].status == "revoked" and rows[s.r].locations == ("10.0.0.9:443",)
    assert rows[s.a].declared_location == "shop-lb" and rows[s.r].declared_location is None
    assert rows[s.b].status == "valid" and rows[s.b].renewal_method == "est" and rows[s.b].source == "tetra"
    assert len(rows[s.a].fingerprint) == 64 and rows[s.a].serial
    per_issuer, per_key, per_status = report.charts
    # The demo CA's own certificates (its root and issuing CA among them) are in the inventory too.
    expected = await baseline_issuers(ca, s.baseline) + Counter({ca.default_issuer: 4, "CN=old.legacy.example.org": 1})
    assert dict(zip(per_issuer.labels, per_issuer.series[0].values, strict=True)) == expected
    assert dict(zip(per_key.labels, per_key.series[0].values, strict=True))["rsa-1024"] == 1
    statuses = dict(zip(per_status.labels, per_status.series[0].values, strict=True))
    assert statuses["revoked"] == 1 and statuses["expiring"] == 2 and sum(statuses.values()) == len(rows)


async def test_issued_report(ca: CertificateAuthority, tmp_path: Path) -> None:
    """This week: one by ACME, one by EST (A's renewal, on time), the rest by the CLI including
    C, which renewed a certificate that had already expired (late)."""
    s = await build(ca, tmp_path)
    report = await issued_report(ca, weeks=4, now=s.now)
    this_week = week_of(s.now).isoformat()
    rows = {(row.week, row.protocol): row for row in report.rows}
    assert rows[(this_week, "acme")].issued == 1 and rows[(this_week, "acme")].renewals == 0
    est = rows[(this_week, "est")]
    assert (est.issued, est.renewals, est.renewals_on_time, est.renewals_late) == (1, 1, 1, 0)
    cli = rows[(this_week, "cli")]
    assert cli.issued >= 2 and (cli.renewals, cli.renewals_on_time, cli.renewals_late) == (1, 0, 1)
    assert {row.issuer for row in report.rows} == {ca.default_issuer}
    per_protocol, renewals, per_issuer = report.charts
    assert len(per_protocol.labels) == 4 and per_protocol.labels[-1] == this_week
    drawn = {series.name: series.values[-1] for series in per_protocol.series}
    assert drawn["acme"] == 1 and drawn["est"] == 1 and drawn["cli"] == cli.issued
    assert [(series.name, series.values) for series in renewals.series] == [
        ("on time", (0, 0, 0, 1)),
        ("late", (0, 0, 0, 1)),
    ]
    assert per_issuer.series[0].values == (sum(row.issued for row in report.rows),)
