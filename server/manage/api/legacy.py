"""The operator API's first calls, kept for the automation and tests written against them:
POST /enroll and POST /revoke (the third, GET /requests/{id}, is server/manage/api/requests.py
now). Same request schemas and success bodies as before; now behind a user's token, refused
as problem documents."""

from __future__ import annotations

from typing import Any

from ca.digits import parse_hex
from ca.operators.roles import Permission
from server.manage.actions import certificates, issuance
from server.manage.actions.issuance import Order
from server.manage.api.outcomes import HELD, ISSUED, outcome_reply
from server.manage.endpoint import Call, Endpoint, Reply
from server.manage.problems import Problem
from server.manage.schemas import CSR, INVENTORY, NAME, REVOCATION_REASON, SERIAL_MAX

ENROLL_REQUEST: dict[str, Any] = {
    "title": "EnrollRequest",
    "description": "POST /api/v1/enroll: a PKCS#10 request to issue under a profile.",
    "type": "object",
    "required": ["csr", "profile"],
    "additionalProperties": False,
    "properties": {"csr": CSR, "profile": NAME, "inventory": INVENTORY},
}

REVOKE_REQUEST: dict[str, Any] = {
    "title": "RevokeRequest",
    "description": "POST /api/v1/revoke: revoke one certificate by serial.",
    "type": "object",
    "required": ["serial"],
    "additionalProperties": False,
    "properties": {
        "serial": {
            "type": "string",
            "minLength": 1,
            "maxLength": SERIAL_MAX,
            "pattern": "^[0-9A-Fa-f:]+$",
            "description": "hexadecimal, colons between octets allowed",
        },
        "issuer": {**NAME, "description": "needed if ambiguous"},
        "reason": REVOCATION_REASON,
    },
}

REVOKED: dict[str, Any] = {
    "type": "object",
    "required": ["serial", "status", "reason"],
    "properties": {"serial": {"type": "string"}, "status": {"type": "string"}, "reason": {"type": ["string", "null"]}},
}


async def enroll(call: Call) -> Reply:
    body = call.body
    inventory = body.get("inventory", {})
    order = Order(
        profile=body["profile"],
        csr=body["csr"].encode(),
        team=inventory.get("team"),
        owner=inventory.get("owner"),
        application=inventory.get("application"),
        location=inventory.get("location"),
    )
    requested = await issuance.request_certificate(call.ca, call.acting, order)
    return outcome_reply(requested.outcome, issued_status=201)


async def revoke(call: Call) -> Reply:
    body = call.body
    serial = parse_hex(body["serial"].replace(":", ""), 40)
    if serial is None:
        raise Problem("invalid-body", "body.serial must be at most 20 octets in hexadecimal")
    reason = body.get("reason", "unspecified")
    revoked = await certificates.revoke_by_serial(call.ca, call.acting, serial, body.get("issuer"), reason)
    return Reply(body={"serial": revoked.serial_hex, "status": revoked.status, "reason": revoked.revocation_reason})


ENDPOINTS = (
    Endpoint(
        "POST",
        "/enroll",
        "enroll",
        "Issue a certificate for a CSR under a profile (held for approval if the profile says so)",
        Permission.CERTIFICATES_REQUEST,
        enroll,
        {201: ISSUED, 202: HELD},
        body=ENROLL_REQUEST,
        tag="enrolment",
    ),
    Endpoint(
        "POST",
        "/revoke",
        "revokeBySerial",
        "Revoke one certificate by serial",
        Permission.CERTIFICATES_REVOKE,
        revoke,
        {200: REVOKED},
        body=REVOKE_REQUEST,
        tag="enrolment",
    ),
)
