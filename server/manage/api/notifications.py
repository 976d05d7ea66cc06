"""Notifications: GET /notifications/status (outbox counts and troubled deliveries),
GET /notifications/outbox (rows, paged, filter by state), POST /notifications/run (plan and
deliver now), POST /notifications/test (one test message to an address or a webhook)."""

from __future__ import annotations

from typing import Any

from ca.notices.outbox import OUTBOX_STATES, Message
from ca.operators.roles import Permission
from server.manage.actions import notifications
from server.manage.endpoint import Call, Endpoint, QueryParam, Reply
from server.manage.paging import PAGING, fetch_size, page, page_request, page_schema

_TIME = {"type": ["string", "null"]}
MESSAGE: dict[str, Any] = {
    "title": "OutboxMessage",
    "type": "object",
    "required": ["id", "rule", "level", "channel", "recipient", "subject", "attempts", "state"],
    "properties": {
        "id": {"type": "integer"},
        "rule": {"type": "string", "description": "expiry:30d, weak-key, revoked-deployed, digest..."},
        "level": {"type": "string", "enum": ["owner", "team", "admin"]},
        "channel": {"type": "string", "enum": ["email", "webhook"]},
        "recipient": {"type": "string", "description": "an address, or a configured webhook's name"},
        "subject": {"type": "string"},
        "inventory_id": {"type": ["integer", "null"]},
        "attempts": {"type": "integer"},
        "last_error": {"type": ["string", "null"]},
        "state": {"type": "string", "enum": list(OUTBOX_STATES)},
        "created_at": _TIME,
        "delivered_at": _TIME,
        "gave_up_at": _TIME,
    },
}
STATUS: dict[str, Any] = {
    "title": "OutboxStatus",
    "type": "object",
    "required": ["queued", "delivered", "failing", "given_up", "troubled"],
    "properties": {
        "queued": {"type": "integer", "description": "not yet delivered nor given up (failing included)"},
        "delivered": {"type": "integer"},
        "failing": {"type": "integer"},
        "given_up": {"type": "integer"},
        "troubled": {"type": "array", "items": MESSAGE, "description": "failing or given up, latest first"},
    },
}
PASS: dict[str, Any] = {
    "title": "NotificationPass",
    "type": "object",
    "required": ["due", "queued", "unroutable", "delivered", "failed", "given_up"],
    "properties": {
        name: {"type": "integer"} for name in ("due", "queued", "unroutable", "delivered", "failed", "given_up")
    },
}
TEST: dict[str, Any] = {
    "title": "TestNotification",
    "description": "An email address, or the name of a webhook in [notifications.webhooks].",
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "maxProperties": 1,
    "properties": {
        "email": {"type": "string", "minLength": 3, "maxLength": 320},
        "webhook": {"type": "string", "minLength": 1, "maxLength": 64},
    },
}
TESTED: dict[str, Any] = {
    "type": "object",
    "required": ["delivered", "error"],
    "properties": {"delivered": {"type": "boolean"}, "error": {"type": ["string", "null"]}},
}
STATE = QueryParam("state", {"type": "string", "enum": list(OUTBOX_STATES)}, "only rows in this state")


async def outbox_status(call: Call) -> Reply:
    status = await notifications.status(call.ca, call.acting)
    return Reply(
        body={
            "queued": status.queued,
            "delivered": status.delivered,
            "failing": status.failing,
            "given_up": status.given_up,
            "troubled": [message_dict(m) for m in status.troubled],
        }
    )


async def list_outbox(call: Call) -> Reply:
    request = page_request(call.query)
    found = await notifications.outbox(
        call.ca, call.acting, state=call.query.get("state"), after_id=request.after_id, limit=fetch_size(request)
    )
    return Reply(body=page(found, request, lambda m: m.id, message_dict))


async def run_now(call: Call) -> Reply:
    result = await notifications.run_now(call.ca, call.server.notifications, call.acting)
    plan, sent = result.plan, result.sent
    body = {
        "due": plan.due,
        "queued": plan.queued,
        "unroutable": plan.unroutable,
        "delivered": sent.delivered,
        "failed": sent.failed,
        "given_up": sent.given_up,
    }
    return Reply(body=body)


async def send_test(call: Call) -> Reply:
    error = await notifications.send_test_message(
        call.ca, call.server.notifications, call.acting, email=call.body.get("email"), webhook=call.body.get("webhook")
    )
    return Reply(body={"delivered": error is None, "error": error})


def message_dict(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "rule": message.rule,
        "level": message.level,
        "channel": message.channel,
        "recipient": message.recipient,
        "subject": message.subject,
        "inventory_id": message.inventory_id,
        "attempts": message.attempts,
        "last_error": message.last_error,
        "state": _state(message),
        "created_at": message.created_at.isoformat() if message.created_at else None,
        "delivered_at": message.delivered_at.isoformat() if message.delivered_at else None,
        "gave_up_at": message.gave_up_at.isoformat() if message.gave_up_at else None,
    }


def _state(message: Message) -> str:
    if message.delivered_at is not None:
        return "delivered"
    if message.gave_up_at is not None:
        return "given-up"
    return "failing" if message.attempts else "queued"


ENDPOINTS = (
    Endpoint(
        "GET",
        "/notifications/status",
        "getNotificationStatus",
        "The outbox: counts, and the deliveries failing or given up",
        Permission.NOTIFICATIONS_READ,
        outbox_status,
        {200: STATUS},
        tag="notifications",
    ),
    Endpoint(
        "GET",
        "/notifications/outbox",
        "listOutbox",
        "Outbox rows, oldest first",
        Permission.NOTIFICATIONS_READ,
        list_outbox,
        {200: page_schema(MESSAGE)},
        query=(STATE, *PAGING),
        tag="notifications",
    ),
    Endpoint(
        "POST",
        "/notifications/run",
        "runNotifications",
        "Plan what is due and deliver it now (one pass)",
        Permission.NOTIFICATIONS_MANAGE,
        run_now,
        {200: PASS},
        tag="notifications",
    ),
    Endpoint(
        "POST",
        "/notifications/test",
        "sendTestNotification",
        "Send one test message now (delivered: false with the transport's error if it failed)",
        Permission.NOTIFICATIONS_MANAGE,
        send_test,
        {200: TESTED},
        body=TEST,
        tag="notifications",
    ),
)
