"""A report as CSV: its one table, header first, every cell neutralised against spreadsheet
formulas (CLM-08) by the inventory's own CSV writer, so an owner typed as ``=HYPERLINK(..)``
or a subject an attacker chose is shown as text, never run."""

from __future__ import annotations

from ca.inventory.exchange import write_csv
from server.reports.model import Report, text_rows


def render_csv(report: Report) -> str:
    return write_csv(report.columns, text_rows(report))
