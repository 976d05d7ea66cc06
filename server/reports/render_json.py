"""A report as JSON for scripts: what it was asked for, its rows as objects (numbers and flags
typed, lists as lists, times as ISO 8601 UTC), and the counts its charts show."""

from __future__ import annotations

import json
from typing import Any

from server.reports.model import Report, cell_text, json_value


def render_json(report: Report) -> str:
    document: dict[str, Any] = {
        "report": report.kind,
        "title": report.title,
        "generated_at": cell_text(report.generated_at),
        "parameters": dict(report.parameters),
        "columns": list(report.columns),
        "rows": [{name: json_value(getattr(row, name)) for name in report.columns} for row in report.rows],
        "charts": [
            {
                "title": chart.title,
                "labels": list(chart.labels),
                "stacked": chart.stacked,
                "series": [{"name": s.name, "values": list(s.values)} for s in chart.series],
            }
            for chart in report.charts
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
