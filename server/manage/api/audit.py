"""The audit log: GET /audit (events, paged, filtered by actor, action, target, since/until)
and GET /audit/verify (the hash chain's report, as `tetra audit verify` gives it)."""

from __future__ import annotations

from typing import Any

from ca.audit import AuditFilter, LoggedEvent
from ca.operators.roles import Permission
from server.manage.actions import audit
from server.manage.endpoint import Call, Endpoint, QueryParam, Reply
from server.manage.paging import PAGING, fetch_size, page, page_request, page_schema
from server.manage.times import moment

EVENT: dict[str, Any] = {
    "title": "AuditEvent",
    "type": "object",
    "required": ["seq", "at", "actor", "action", "target", "details"],
    "properties": {
        "seq": {"type": "integer", "description": "its place in the hash chain"},
        "at": {"type": "string", "format": "date-time"},
        "actor": {"type": "string", "description": "user:NAME, cli:NAME, system..."},
        "action": {"type": "string"},
        "target": {"type": "string"},
        "details": {"type": "object"},
    },
}
REPORT: dict[str, Any] = {
    "title": "AuditChainReport",
    "type": "object",
    "required": ["ok", "events", "problems"],
    "properties": {
        "ok": {"type": "boolean"},
        "events": {"type": "integer"},
        "problems": {"type": "array", "items": {"type": "string"}},
    },
}
_TEXT = {"type": "string", "minLength": 1, "maxLength": 255}
_MOMENT = {"type": "string", "minLength": 10, "maxLength": 40, "description": "ISO 8601; UTC if no offset"}
FILTERS = (
    QueryParam("actor", _TEXT, "exactly this actor (user:alice)"),
    QueryParam("action", {**_TEXT, "maxLength": 64}, 'this action; ending in "." every action it begins'),
    QueryParam("target", _TEXT, "targets beginning with this (request/12, user/)"),
    QueryParam("since", _MOMENT, "events at or after"),
    QueryParam("until", _MOMENT, "events before"),
)


async def list_events(call: Call) -> Reply:
    request = page_request(call.query)
    q = call.query
    flt = AuditFilter(
        q.get("actor"),
        q.get("action"),
        q.get("target"),
        moment(q.get("since"), "query parameter since", "invalid-query"),
        moment(q.get("until"), "query parameter until", "invalid-query"),
    )
    found = await audit.events(call.ca, call.acting, flt, after_seq=request.after_id, limit=fetch_size(request))
    return Reply(body=page(found, request, lambda e: e.seq, as_dict))


async def verify(call: Call) -> Reply:
    report = await audit.verify(call.ca, call.acting)
    return Reply(body={"ok": report.ok, "events": report.events, "problems": list(report.problems)})


def as_dict(logged: LoggedEvent) -> dict[str, Any]:
    event = logged.event
    return {
        "seq": logged.seq,
        "at": logged.at.isoformat(),
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "details": event.details,
    }


ENDPOINTS = (
    Endpoint(
        "GET",
        "/audit",
        "listAuditEvents",
        "Audit events in chain order, filtered",
        Permission.AUDIT_READ,
        list_events,
        {200: page_schema(EVENT)},
        query=(*FILTERS, *PAGING),
        tag="audit",
    ),
    Endpoint(
        "GET",
        "/audit/verify",
        "verifyAuditChain",
        "Check the audit log's hash chain",
        Permission.AUDIT_READ,
        verify,
        {200: REPORT},
        tag="audit",
    ),
)
