"""The activity log: what the CA did, one structured log record per event.

Every event (an issuance, a refusal, a revocation, an ACME account created, the server
stopping...) is logged once, by `log_event`, at the one place the event is decided, on the
`tetra.activity` logger. A record carries its event name and fields in ``record.activity``
(a dict) so server/logs.py can write it as JSON; its message is the same, readable as text:
``certificate.issued request_id=5f0c2a91d3e4b6a7 protocol=acme profile=tls-server serial=...``.

The request id and protocol come from the request being served: the server opens a
`request_scope` around each HTTP request (server/requestlog.py) and a protocol's handler
(server/app.py), so code deep in the core logs the right id without passing it along. A
task started while serving a request (an ACME validation) inherits the scope, so what it
logs later carries the id of the request that started it. The `tetra` command opens one
scope per invocation (id ``cli-…``).

The vocabulary is `Event`; docs/logging.md lists every event with its fields.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import re
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

LOGGER = logging.getLogger("tetra.activity")


class Event(enum.StrEnum):
    """Every activity event; the value is the name the log carries."""

    # The core (ca/service_events.py), whichever protocol or command asked.
    ISSUED = "certificate.issued"
    REFUSED = "issuance.refused"
    HELD = "request.held"
    APPROVED = "request.approved"
    REJECTED = "request.rejected"
    REVOKED = "certificate.revoked"
    CRL_PUBLISHED = "crl.published"
    # ACME (protocols/acme/events.py).
    ACCOUNT_CREATED = "acme.account.created"
    ACCOUNT_DEACTIVATED = "acme.account.deactivated"
    ACCOUNT_KEY_CHANGED = "acme.account.key_changed"
    ORDER_CREATED = "acme.order.created"
    AUTHORIZATION_VALID = "acme.authorization.valid"
    VALIDATION_FAILED = "acme.validation.failed"
    # The server process (server/app.py).
    SERVER_STARTING = "server.starting"
    SERVER_SERVING = "server.serving"
    SERVER_STOPPING = "server.stopping"
    SERVER_STOPPED = "server.stopped"


@dataclass(frozen=True, slots=True)
class RequestScope:
    """What every event logged while serving one request shares."""

    request_id: str
    protocol: str | None = None


_SCOPE: ContextVar[RequestScope | None] = ContextVar("tetra_request_scope", default=None)


def new_request_id(prefix: str = "") -> str:
    """16 random hex digits: unique enough to find one request among a day's log lines."""
    return prefix + os.urandom(8).hex()


def current_scope() -> RequestScope | None:
    return _SCOPE.get()


@contextlib.contextmanager
def request_scope(request_id: str | None = None, *, protocol: str | None = None) -> Iterator[RequestScope]:
    """Events logged inside carry this request id (a new one if None) and protocol. Nested in
    another scope with no id of its own, it keeps the outer id and sets the protocol."""
    outer = _SCOPE.get()
    if request_id is None and outer is not None:
        scope = replace(outer, protocol=protocol or outer.protocol)
    else:
        scope = RequestScope(request_id or new_request_id(), protocol)
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


def log_event(event: Event, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log one activity event. Fields that are None are left out; the scope's request id and
    protocol are added unless the caller names them (the protocol of an approved request is
    the one it came by, not the command's)."""
    if not LOGGER.isEnabledFor(level):
        return
    scope = _SCOPE.get()
    entry: dict[str, Any] = {"event": event.value}
    if scope is not None:
        entry["request_id"] = scope.request_id
        if scope.protocol is not None:
            entry["protocol"] = scope.protocol
    entry.update((key, value) for key, value in fields.items() if value is not None)
    LOGGER.log(level, "%s", render_text(entry), extra={"activity": entry})


_BARE = re.compile(r"[A-Za-z0-9_.,:/@+*-]+")


def render_value(value: Any) -> str:
    """A field's value as text: plain when it is one safe word, else quoted with JSON's escapes,
    so a subject holding spaces, quotes or a newline stays on one line and cannot fake a field."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    text = str(value)
    if _BARE.fullmatch(text):
        return text
    return json.dumps(text, ensure_ascii=True)


def render_text(entry: dict[str, Any]) -> str:
    """``event key=value ...``: the event name first, then its fields in the order given."""
    parts = [str(entry["event"])]
    parts += [f"{key}={render_value(value)}" for key, value in entry.items() if key != "event"]
    return " ".join(parts)


def json_value(value: Any) -> Any:
    """A field's value for JSON: lists stay lists, numbers and booleans stay what they are."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return str(value)


__all__ = [
    "LOGGER",
    "Event",
    "RequestScope",
    "current_scope",
    "json_value",
    "log_event",
    "new_request_id",
    "render_text",
    "render_value",
]
