"""Log formatting (server/logs.py) and the activity-event vocabulary (ca/activity.py): text by
default with ISO 8601 UTC millisecond times and key=value fields that cannot break a line or
fake a field, JSON lines with the event's fields as members, the request scope, the switch."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ca.activity import Event, current_scope, log_event, render_text, request_scope
from ca.errors import ConfigError
from server.logs import CommandLines, JsonLines, TextLines, iso_time
from server.wiring import read_config

ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


@pytest.fixture
def activity_lines() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    """What the tetra.activity logger writes, through a handler whose formatter a test sets."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("tetra.activity")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream, handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def test_iso_time_is_utc_with_milliseconds() -> None:
    """OPS-14: the time of every line is ISO 8601, UTC, to the millisecond; never an epoch number."""
    assert iso_time(0.0015) == "1970-01-01T00:00:00.001Z"
    assert iso_time(1796519690.9999) == "2026-12-06T01:14:50.999Z"
    record = logging.LogRecord("tetra.server", logging.INFO, __file__, 1, "serving", None, None)
    assert re.fullmatch(rf"{ISO} INFO tetra.server: serving", TextLines().format(record))
    assert re.fullmatch(ISO, json.loads(JsonLines().format(record))["time"])


def test_text_line_names_the_event_then_its_fields(activity_lines: tuple[io.StringIO, logging.Handler]) -> None:
    """OPS-13: an event is one text line: the event name, the request id and protocol of the
    scope it was logged in, then its fields in order; None fields are left out."""
    stream, handler = activity_lines
    handler.setFormatter(TextLines())
    with request_scope("abc123", protocol="acme"):
        log_event(Event.ISSUED, profile="tls-server", serial="1f", subject="CN=www.example.test", note=None)
    line = stream.getvalue()
    assert re.fullmatch(
        rf"{ISO} INFO tetra.activity: certificate.issued request_id=abc123 protocol=acme profile=tls-server "
        r'serial=1f subject="CN=www.example.test"\n',
        line,
    ), line


def test_a_value_cannot_break_the_line_or_fake_a_field() -> None:
    """OPS-13: a subject holding spaces, quotes, '=' or a newline is quoted with JSON's escapes."""
    text = render_text({"event": "issuance.refused", "subject": 'CN=x" serial=1\nINFO forged', "reason": "bad_csr"})
    assert "\n" not in text
    assert text == 'issuance.refused subject="CN=x\\" serial=1\\nINFO forged" reason=bad_csr'
    assert render_text({"event": "e", "sans": ["dns:a.test", "dns:b.test"], "ok": True}) == (
        "e sans=dns:a.test,dns:b.test ok=true"
    )


def test_json_line_carries_the_fields_as_members(activity_lines: tuple[io.StringIO, logging.Handler]) -> None:
    """OPS-14: with format = "json" an event is one JSON object: time, level, logger, message and
    each field as a member of its own type (numbers stay numbers, lists stay lists)."""
    stream, handler = activity_lines
    handler.setFormatter(JsonLines())
    with request_scope("r-1"):
        log_event(Event.REVOKED, serial="2a", reason="keyCompromise", by="cli:alice", held_request=7, sans=["dns:x"])
    entry = json.loads(stream.getvalue())
    assert entry["event"] == "certificate.revoked" and entry["level"] == "info" and entry["logger"] == "tetra.activity"
    assert entry["request_id"] == "r-1" and entry["serial"] == "2a" and entry["reason"] == "keyCompromise"
    assert entry["held_request"] == 7 and entry["sans"] == ["dns:x"] and "protocol" not in entry
    assert entry["message"].startswith("certificate.revoked request_id=r-1 serial=2a")


def test_an_ordinary_record_as_json_has_no_event() -> None:
    record = logging.LogRecord("tetra.jobs", logging.WARNING, __file__, 1, "lease %s lost", ("x",), None)
    entry = json.loads(JsonLines().format(record))
    assert entry == {"time": entry["time"], "level": "warning", "logger": "tetra.jobs", "message": "lease x lost"}


async def test_request_scope_nests_and_follows_tasks() -> None:
    """OPS-13: a protocol's scope inside the server's keeps the request id and adds the protocol;
    a task started inside (an ACME validation) keeps the scope after the request has left it."""
    assert current_scope() is None
    with request_scope("outer") as outer:
        with request_scope(protocol="acme") as inner:
            assert inner.request_id == "outer" and inner.protocol == "acme"
            task = asyncio.ensure_future(asyncio.sleep(0, result=None))
            later = asyncio.get_running_loop().create_task(_scope_later())
        assert current_scope() == outer
        await task
    assert current_scope() is None
    assert await later == ("outer", "acme")
    with request_scope() as fresh:
        assert re.fullmatch(r"[0-9a-f]{16}", fresh.request_id)


async def _scope_later() -> tuple[str, str | None]:
    await asyncio.sleep(0.01)
    scope = current_scope()
    assert scope is not None
    return scope.request_id, scope.protocol


def test_commands_write_errors_plainly_and_events_as_the_server_does() -> None:
    """A one-shot command keeps its `tetra: ERROR:` lines and writes its events like the server."""
    error = logging.LogRecord("alembic", logging.ERROR, __file__, 1, "broken", None, None)
    assert CommandLines("text").format(error) == "tetra: ERROR: broken"
    event = logging.LogRecord(
        "tetra.activity", logging.INFO, __file__, 1, "request.approved held_request=3", None, None
    )
    event.activity = {"event": "request.approved", "held_request": 3}
    assert json.loads(CommandLines("json").format(event))["held_request"] == 3
    assert CommandLines("text").format(event).endswith("INFO tetra.activity: request.approved held_request=3")


def test_access_log_is_off_unless_switched_on(ca_dir: Path) -> None:
    """OPS-14: `[logging] access_log` is false by default, true from the file or the environment,
    and anything but a boolean is refused naming the key."""
    config = ca_dir / "tetra.toml"
    assert read_config(config, environ={}).access_log is False
    assert read_config(config, environ={"TETRA_LOGGING__ACCESS_LOG": "true"}).access_log is True
    with pytest.raises(ConfigError, match=r"logging\.access_log: expected boolean"):
        read_config(config, environ={"TETRA_LOGGING__ACCESS_LOG": '"yes"'})
