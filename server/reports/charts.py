"""Charts as inline SVG, drawn by pygal, for a report page that needs no network and no script.

pygal always writes its configuration into the SVG as a ``<script>`` (for its optional
interactive tooltips, which would load JavaScript from the web); that element is removed before
the SVG is serialised (with pygal's credit comments), so the page holds no script at all and
certificate text in a label can never reach one. Labels and values are written by ElementTree,
which escapes them. Each bar also carries its number as text (``print_values``), so the chart
can be read, and checked, without hovering.
"""

from __future__ import annotations

import math
from typing import Any

import pygal
from pygal.style import Style

from server.reports.model import Chart

_STYLE = Style(
    background="white",
    plot_background="white",
    foreground="#333",
    foreground_strong="#111",
    foreground_subtle="#999",
    font_family="system-ui, sans-serif",
    title_font_size=15,
    label_font_size=11,
    major_label_font_size=11,
    value_font_size=11,
    legend_font_size=12,
    colors=("#3465a4", "#cc0000", "#73d216", "#f57900", "#75507b", "#c4a000", "#555753"),
)
_SIZE = {"width": 820, "height": 340}


def chart_svg(chart: Chart) -> str:
    """The chart as an ``<svg>`` element (no XML declaration), ready to put into HTML."""
    kind: Any
    if chart.horizontal:
        kind = pygal.HorizontalStackedBar if chart.stacked else pygal.HorizontalBar
    else:
        kind = pygal.StackedBar if chart.stacked else pygal.Bar
    height = max(_SIZE["height"], 60 + 26 * len(chart.labels)) if chart.horizontal else _SIZE["height"]
    drawing = kind(
        style=_STYLE,
        width=_SIZE["width"],
        height=height,
        title=chart.title,
        js=[],
        disable_xml_declaration=True,
        print_values=True,
        print_zeroes=False,
        show_legend=len(chart.series) > 1,
        legend_at_bottom=True,
        x_label_rotation=0 if chart.horizontal else 30,
        truncate_label=40,
        min_scale=1,
        no_data_text="nothing to show",
    )
    drawing.add_xml_filter(_without_scripts_or_comments)
    drawing.x_labels = list(chart.labels)
    if chart.labels and chart.series:  # else pygal writes no_data_text (and fails on set ticks)
        drawing.y_labels = _count_ticks(chart)
    for series in chart.series:
        drawing.add(series.name, list(series.values))
    return str(drawing.render(is_unicode=True))


def _count_ticks(chart: Chart) -> list[int]:
    """Whole-number ticks for the value axis (certificates are counted, never 0.2 of one)."""
    columns = [[s.values[n] for s in chart.series] for n in range(len(chart.labels))]
    highest = max((sum(c) if chart.stacked else max(c, default=0) for c in columns), default=0)
    step = max(1, math.ceil(highest / 8))
    return list(range(0, highest + step + 1, step))


def _without_scripts_or_comments(root: Any) -> Any:
    """Drop pygal's ``<script>`` and its credit comments (which name web addresses)."""
    for parent in list(root.iter()):
        for child in list(parent):
            if callable(child.tag) or str(child.tag).rpartition("}")[2] == "script":
                parent.remove(child)
    return root
