"""A report as one self-contained HTML page: inline CSS, charts as inline SVG, no script and
nothing fetched, so it can be mailed, archived with an audit, or opened offline.

The page comes from a Jinja2 template with autoescaping on: every text from a certificate (a
subject, a name, an owner) is escaped, so a subject holding ``<script>`` is shown as text. The
only markup let through unescaped is the charts' SVG, which ElementTree wrote and escaped
(charts.py).
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from server.reports.charts import chart_svg
from server.reports.model import Report, cell_text, text_rows

TEMPLATES = Path(__file__).parent / "templates"
_ENVIRONMENT = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_html(report: Report) -> str:
    return _ENVIRONMENT.get_template("report.html").render(
        report=report,
        generated_at=cell_text(report.generated_at),
        headers=[name.replace("_", " ") for name in report.columns],
        rows=text_rows(report),
        charts=[(chart.title, Markup(chart_svg(chart))) for chart in report.charts],
    )
