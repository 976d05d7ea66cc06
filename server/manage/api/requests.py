"""/requests: the approval queue (every protocol's held requests) and each request's outcome.

GET /requests/{id} is also the first API's poll, and keeps its answers: 202 with
`request_id` and Retry-After while the request waits, 200 with the certificate (`serial`,
`issuer`, `certificate`, `chain`) once issued. Both now carry the request's record too."""

from __future__ import annotations

from typing import Any

from ca.enrollment import Issued
from ca.errors import PolicyViolation
from ca.operators.roles import Permission
from ca.records import RequestRecord
from server.manage.actions import requests
from server.manage.api.outcomes import ISSUED, outcome_reply
from server.manage.endpoint import Call, Endpoint, QueryParam, Reply, path_id
from server.manage.paging import PAGING, fetch_size, page, page_request, page_schema

TAG = "requests"

RECORD: dict[str, Any] = {
    "type": "object",
    "required": ["id", "request_id", "status", "protocol", "profile", "requester", "team", "subject", "sans"],
    "properties": {
        "id": {"type": "integer"},
        "request_id": {"type": "integer", "description": "the same as id (the first API's name)"},
        "status": {"type": "string", "enum": list(requests.STATUSES)},
        "protocol": {"type": "string"},
        "profile": {"type": "string"},
        "requester": {"type": "string"},
        "team": {"type": ["string", "null"]},
        "subject": {"type": "string"},
        "sans": {"type": "array", "items": {"type": "string"}},
        "created_at": {"type": "string"},
        "decided_at": {"type": ["string", "null"]},
        "decided_by": {"type": ["string", "null"]},
        "decision_note": {"type": ["string", "null"]},
        "certificate_id": {"type": ["integer", "null"]},
    },
}
WITH_CERTIFICATE: dict[str, Any] = {
    "type": "object",
    "required": [*RECORD["required"], *ISSUED["required"]],
    "properties": {**RECORD["properties"], **ISSUED["properties"]},
}
REJECT: dict[str, Any] = {
    "title": "Rejection",
    "type": "object",
    "required": ["reason"],
    "additionalProperties": False,
    "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 1024}},
}
STATUS = QueryParam("status", {"type": "string", "enum": list(requests.STATUSES)}, "pending: the approval queue")


def render(record: RequestRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "request_id": record.id,
        "status": record.status,
        "protocol": record.protocol,
        "profile": record.profile,
        "requester": record.requester,
        "team": record.team,
        "subject": record.subject,
        "sans": list(record.sans),
        "created_at": record.created_at.isoformat(),
        "decided_at": record.decided_at.isoformat() if record.decided_at else None,
        "decided_by": record.decided_by,
        "decision_note": record.decision_note,
        "certificate_id": record.certificate_id,
    }


async def queue(call: Call) -> Reply:
    request = page_request(call.query)
    found = await requests.queue(
        call.ca, call.acting, status=call.query.get("status"), after_id=request.after_id, limit=fetch_size(request)
    )
    return Reply(body=page(found, request, lambda r: r.id, render))


async def show(call: Call) -> Reply:
    request_id = path_id(call)
    record = await requests.show(call.ca, call.acting, request_id)
    if record.status == "rejected":
        return Reply(body=render(record))
    try:
        outcome = await call.ca.poll(request_id)
    except PolicyViolation:  # rejected meanwhile
        return Reply(body=render(await requests.show(call.ca, call.acting, request_id)))
    reply = outcome_reply(outcome, issued_status=200)
    return Reply(reply.status, {**render(record), **reply.body}, headers=reply.headers)


async def approve(call: Call) -> Reply:
    request_id = path_id(call)
    issued: Issued = await requests.approve(call.ca, call.acting, request_id)
    record = await requests.show(call.ca, call.acting, request_id)
    return Reply(body={**render(record), **outcome_reply(issued, issued_status=200).body})


async def reject(call: Call) -> Reply:
    record = await requests.reject(call.ca, call.acting, path_id(call), call.body["reason"])
    return Reply(body=render(record))


_ITEM = "/requests/{id}"

ENDPOINTS = (
    Endpoint(
        "GET",
        "/requests",
        "listRequests",
        "Requests held for approval (status=pending), and decided ones",
        Permission.REQUESTS_READ,
        queue,
        {200: page_schema(RECORD)},
        query=(STATUS, *PAGING),
        tag=TAG,
    ),
    Endpoint(
        "GET",
        _ITEM,
        "getRequest",
        "A request, and its certificate once issued (202 while it waits)",
        Permission.REQUESTS_READ,
        show,
        {200: RECORD, 202: RECORD},
        tag=TAG,
    ),
    Endpoint(
        "POST",
        _ITEM + "/approve",
        "approveRequest",
        "Approve a held request: the certificate is issued now",
        Permission.REQUESTS_DECIDE,
        approve,
        {200: WITH_CERTIFICATE},
        tag=TAG,
    ),
    Endpoint(
        "POST",
        _ITEM + "/reject",
        "rejectRequest",
        "Reject a held request, saying why",
        Permission.REQUESTS_DECIDE,
        reject,
        {200: RECORD},
        body=REJECT,
        tag=TAG,
    ),
)
