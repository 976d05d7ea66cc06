"""The traceback throttle of server/failures.py (DOS-15): per site, once a minute."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from server import failures
from server.failures import TRACEBACK_EVERY, UnexpectedFailures


def fail_here() -> None:
    raise ValueError("first site")


def fail_there() -> None:
    raise ValueError("second site")


def caught(fn: Callable[[], None]) -> BaseException:
    try:
        fn()
    except ValueError as exc:
        return exc
    raise AssertionError("did not raise")


def test_one_traceback_per_site_per_minute(caplog: pytest.LogCaptureFixture) -> None:
    """DOS-15: every failure logs one line; a site's traceback comes again only once a minute
    has passed, and another site (or another exception type at the same line) has its own."""
    now = 1000.0
    record = UnexpectedFailures(clock=lambda: now)
    caplog.set_level(logging.ERROR, logger="tetra.http")
    for _ in range(50):
        record.record("acme", "GET /x from 192.0.2.1", caught(fail_here))
    record.record("acme", "GET /y", caught(fail_there))
    now += TRACEBACK_EVERY - 1
    record.record("acme", "GET /x", caught(fail_here))
    now += 1
    record.record("acme", "GET /x", caught(fail_here))
    lines = caplog.records
    assert len(lines) == 53
    assert [i for i, r in enumerate(lines) if r.exc_info] == [0, 50, 52]
    assert "test_failures.py:" in lines[0].getMessage() and "192.0.2.1" in lines[0].getMessage()


def test_sites_remembered_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """DOS-15: the memory of sites stays within MAX_SITES, forgetting the oldest."""
    monkeypatch.setattr(failures, "MAX_SITES", 3)
    record = UnexpectedFailures(clock=lambda: 0.0)
    for kind in (ValueError, KeyError, TypeError, OSError, LookupError):
        record.record("api", "GET /", kind("x"))
    assert len(record._last_traceback) == 3
