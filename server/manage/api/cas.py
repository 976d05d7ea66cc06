"""The CA hierarchy: GET /cas (every generation, as `tetra ca list`), GET /cas/{name} (one, with
its certificate), POST /cas/{name}/activate (`tetra ca activate`), POST /cas/{name}/revoke (a
generation an outside CA signed). Rollover, and revoking what this CA's root signed, need the
root's offline key: they stay commands (server/manage/actions/cas.py)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ca.operators.roles import Permission
from server.manage.actions import cas
from server.manage.endpoint import Call, Endpoint, Reply
from server.manage.schemas import REVOCATION_REASON
from server.manage.times import moment

CA_LINE: dict[str, Any] = {
    "title": "CaGeneration",
    "type": "object",
    "required": ["name", "family", "kind", "state", "subject", "not_before", "not_after", "key", "default"],
    "properties": {
        "name": {"type": "string"},
        "family": {"type": "string", "description": "the CA; its generations share it"},
        "kind": {"type": "string", "enum": ["root", "issuing"]},
        "state": {"type": "string"},
        "subject": {"type": "string"},
        "not_before": {"type": "string"},
        "not_after": {"type": "string"},
        "key": {"type": "string", "description": "where its key is (never the key)"},
        "valid_certificates": {"type": "integer"},
        "parent": {"type": "string"},
        "default": {"type": "boolean"},
    },
}
HIERARCHY: dict[str, Any] = {
    "title": "CaHierarchy",
    "type": "object",
    "required": ["items", "warnings"],
    "properties": {
        "items": {"type": "array", "items": CA_LINE},
        "warnings": {"type": "array", "items": {"type": "string"}},
    },
}
DETAIL: dict[str, Any] = {
    "title": "CaDetail",
    "type": "object",
    "required": ["ca", "serial", "sha256", "certificate"],
    "properties": {
        "ca": CA_LINE,
        "serial": {"type": "string"},
        "sha256": {"type": "string"},
        "certificate": {"type": "string", "description": "PEM; empty while pending"},
    },
}
ACTIVATE: dict[str, Any] = {
    "title": "Activation",
    "type": "object",
    "additionalProperties": False,
    "properties": {"at": {"type": "string", "minLength": 10, "maxLength": 40, "description": "ISO 8601; default now"}},
}
REVOKE: dict[str, Any] = {
    "title": "CaRevocation",
    "type": "object",
    "required": ["reason"],
    "additionalProperties": False,
    "properties": {
        "reason": REVOCATION_REASON,
        "force": {"type": "boolean", "description": "even the generation profiles issue from now"},
    },
}
REVOKED: dict[str, Any] = {
    "title": "CaRevoked",
    "type": "object",
    "required": ["name", "reason", "revoked_at", "serial", "issuer"],
    "properties": {
        "name": {"type": "string"},
        "reason": {"type": "string"},
        "revoked_at": {"type": "string"},
        "serial": {"type": "string", "description": "what its issuer must revoke"},
        "issuer": {"type": "string"},
    },
}
ACTIVATED: dict[str, Any] = {
    "type": "object",
    "required": ["name", "activate_at"],
    "properties": {"name": {"type": "string"}, "activate_at": {"type": "string"}},
}


async def list_cas(call: Call) -> Reply:
    found = await cas.hierarchy(call.ca, call.server, call.acting)
    return Reply(body={"items": [asdict(line) for line in found.cas], "warnings": found.warnings})


async def show_ca(call: Call) -> Reply:
    detail = await cas.show(call.ca, call.server, call.acting, call.path["name"])
    body = {"ca": asdict(detail.line), "serial": detail.serial, "sha256": detail.sha256, "certificate": detail.pem}
    return Reply(body=body)


async def activate_ca(call: Call) -> Reply:
    at = moment((call.body or {}).get("at"), "body.at")
    when = await cas.activate(call.ca, call.acting, call.path["name"], at)
    return Reply(body={"name": call.path["name"], "activate_at": when.isoformat()})


async def revoke_ca(call: Call) -> Reply:
    body = call.body
    done = await cas.revoke(call.ca, call.acting, call.path["name"], body["reason"], force=body.get("force", False))
    return Reply(
        body={
            "name": done.name,
            "reason": done.reason,
            "revoked_at": done.at.isoformat(),
            "serial": done.serial,
            "issuer": done.issuer,
        }
    )


ENDPOINTS = (
    Endpoint(
        "GET",
        "/cas",
        "listCas",
        "Every CA generation with its state, and what needs attention",
        Permission.CAS_READ,
        list_cas,
        {200: HIERARCHY},
        tag="cas",
    ),
    Endpoint(
        "GET",
        "/cas/{name}",
        "getCa",
        "One CA generation (a CA's name: the generation issuing now) and its certificate",
        Permission.CAS_READ,
        show_ca,
        {200: DETAIL},
        tag="cas",
    ),
    Endpoint(
        "POST",
        "/cas/{name}/activate",
        "activateCa",
        "A staged generation issues from now (or from `at`)",
        Permission.CAS_MANAGE,
        activate_ca,
        {200: ACTIVATED},
        body=ACTIVATE,
        tag="cas",
    ),
    Endpoint(
        "POST",
        "/cas/{name}/revoke",
        "revokeCa",
        "Revoke a generation an outside CA signed (this CA's own root's: tetra ca revoke)",
        Permission.CAS_MANAGE,
        revoke_ca,
        {200: REVOKED},
        body=REVOKE,
        tag="cas",
    ),
)
