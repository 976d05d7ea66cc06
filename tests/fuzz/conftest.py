"""Prints how many examples each fuzz target ran and the time it took (for `make fuzz` reports)."""

from __future__ import annotations

import pytest

from tests.fuzz.harness import EXAMPLES, STATS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not STATS:
        return
    terminalreporter.section(f"fuzz targets (budget {EXAMPLES} examples per unit of scale)")
    for name, (count, seconds) in sorted(STATS.items()):
        terminalreporter.write_line(f"{name:28} {int(count):7d} inputs {seconds:8.1f} s")
    total = sum(int(c) for c, _ in STATS.values())
    terminalreporter.write_line(f"{'total':28} {total:7d} inputs {sum(s for _, s in STATS.values()):8.1f} s")
