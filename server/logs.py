"""Log lines as readable text (the default) or JSON lines (`[logging] format = "json"`).

Both carry the time in ISO 8601, UTC, to the millisecond (``2026-12-06T01:10:00.123Z``), the
level and the logger. An activity event (ca/activity.py) keeps its fields: as
``key=value`` after the event name in text, as members of the JSON object (beside ``event``,
``message``...) in JSON, so a log shipper reads ``serial`` or ``request_id`` without parsing
the message. docs/logging.md shows both forms.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any

from ca.activity import json_value

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def iso_time(created: float) -> str:
    """A record's time as ISO 8601 UTC with milliseconds: 2026-12-06T01:10:00.123Z."""
    moment = dt.datetime.fromtimestamp(created, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class TextLines(logging.Formatter):
    """``2026-12-06T01:10:00.123Z INFO tetra.activity: certificate.issued serial=...``"""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return iso_time(record.created)


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and an event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        activity = getattr(record, "activity", None)
        if isinstance(activity, dict):
            for key, value in activity.items():
                entry.setdefault(key, json_value(value))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def formatter(fmt: str) -> logging.Formatter:
    return JsonLines() if fmt == "json" else TextLines()


def setup_logging(fmt: str, level: str) -> None:
    """The server's logging: every record to stderr, one line each, in the configured format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


class CommandLines(logging.Formatter):
    """A one-shot command's stderr: library errors as ``tetra: ERROR: ...``, and the activity
    events it decides (an approval, a revocation, an issuance) as the server would write them."""

    def __init__(self, fmt: str) -> None:
        super().__init__("tetra: %(levelname)s: %(message)s")
        self.events = formatter(fmt)

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "activity", None) is not None:
            return self.events.format(record)
        return super().format(record)


_command_handler: list[logging.Handler] = []  # the handler setup_command_logging installed, if any


def setup_command_logging() -> None:
    """A one-shot `tetra` command: errors only, but its activity events at INFO (text until the
    config names a format: `command_log_format`). Nothing is installed if the root logger has
    handlers already (a test calling main()), as logging.basicConfig would not either."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(CommandLines("text"))
        root.addHandler(handler)
        root.setLevel(logging.ERROR)
        _command_handler[:] = [handler]
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("tetra.activity").setLevel(logging.INFO)


def command_log_format(fmt: str) -> None:
    """The config is read: write the command's events in its `[logging] format`."""
    for handler in _command_handler:
        handler.setFormatter(CommandLines(fmt))
