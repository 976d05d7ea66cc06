"""A report as the renderers see it: one table of frozen rows, the charts drawn from them, and
how each cell reads as text (CSV, HTML) or as a JSON value.

Every report is a single table so that its CSV is one plain sheet a spreadsheet opens without
guessing where a second table starts; the charts are summaries of the same rows, counted once
here and not again by each renderer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

JsonValue = str | int | bool | None | list[str]


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[int, ...]  # one per label of its chart


@dataclass(frozen=True)
class Chart:
    title: str
    labels: tuple[str, ...]
    series: tuple[Series, ...]
    stacked: bool = False  # several series drawn on top of each other (protocols, on time / late)
    horizontal: bool = False  # categories with long names (issuers, problems) rather than weeks


@dataclass(frozen=True)
class Report:
    kind: str  # expiring | weak | inventory | issued
    title: str
    generated_at: dt.datetime
    parameters: Mapping[str, int]  # what it was asked for: days, weeks
    columns: tuple[str, ...]  # the row type's field names, in order
    rows: tuple[Any, ...]  # frozen dataclass instances, all of one type
    charts: tuple[Chart, ...] = ()


def columns_of(row_type: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(row_type))


def cell_text(value: object) -> str:
    """A cell as text: times in UTC to the second, lists joined by "; ", flags as yes / no."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, tuple):
        return "; ".join(str(v) for v in value)
    return str(value)


def json_value(value: object) -> JsonValue:
    """A cell as JSON: numbers and flags stay typed, lists stay lists, times are ISO 8601 text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, tuple):
        return [str(v) for v in value]
    return cell_text(value)


def text_rows(report: Report) -> list[list[str]]:
    return [[cell_text(getattr(row, name)) for name in report.columns] for row in report.rows]


def count_by(labels: tuple[str, ...], keys: list[str]) -> tuple[int, ...]:
    """How many of ``keys`` fall on each label (a key with no label is not counted)."""
    counts = dict.fromkeys(labels, 0)
    for key in keys:
        if key in counts:
            counts[key] += 1
    return tuple(counts[label] for label in labels)


def week_of(at: dt.datetime) -> dt.date:
    """The Monday (UTC) of the ISO week ``at`` falls in: the label of a per-week bar."""
    day = at.astimezone(dt.UTC).date()
    return day - dt.timedelta(days=day.weekday())
