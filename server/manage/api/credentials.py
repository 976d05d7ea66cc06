"""Protocol credentials: GET /credentials, POST /credentials/{acme-eab,scep-challenge,est-user,
cmp-secret}, POST /credentials/{id}/revoke. The secret is in the 201 answer and nowhere else
(OPS-10); the rules are the protocol commands' own (server/manage/actions/credentials.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ca.durations import parse_duration
from ca.operators.roles import Permission
from server.manage.actions import credentials
from server.manage.actions.credentials import Created, CredentialType, CredentialView
from server.manage.endpoint import Call, Endpoint, QueryParam, Reply, path_id
from server.manage.paging import PAGING, fetch_size, page, page_request, page_schema
from server.manage.problems import Problem
from server.manage.schemas import NAME

_TEXT = {"type": ["string", "null"]}
CREDENTIAL: dict[str, Any] = {
    "title": "Credential",
    "description": "A protocol credential, never its secret.",
    "type": "object",
    "required": ["id", "type", "name", "profile", "identities", "state", "created_at"],
    "properties": {
        "id": {"type": "integer"},
        "type": {"type": "string", "enum": [t.value for t in CredentialType]},
        "name": {**_TEXT, "description": "key id, user name or sender reference; null for a SCEP challenge"},
        "profile": _TEXT,
        "identities": {"type": "array", "items": {"type": "string"}},
        "state": {"type": "string", "enum": ["active", "used", "expired", "revoked"]},
        "bound_to": _TEXT,
        "created_at": _TEXT,
        "expires_at": _TEXT,
        "used_at": _TEXT,
    },
}
CREATED: dict[str, Any] = {
    "title": "CreatedCredential",
    "description": "The new credential and its secret: shown in this answer only, never again.",
    "type": "object",
    "required": ["credential", "secret"],
    "properties": {
        "credential": CREDENTIAL,
        "secret": {
            "type": ["string", "null"],
            "description": "EAB HMAC key (base64url), SCEP challenge, EST password or CMP secret; "
            "null when the request chose it",
        },
    },
}


def _body(title: str, required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": title,
        "type": "object",
        "required": required,
        "additionalProperties": False,
        "properties": properties,
    }


EAB_REQUEST = _body(
    "NewEabKey",
    [],
    {
        "profile": {**NAME, "description": "the only profile accounts bound by this key may use"},
        "key_id": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9_-]+$"},
    },
)
SCEP_REQUEST = _body(
    "NewScepChallenge",
    ["profile"],
    {
        "profile": NAME,
        "ttl": {"type": "string", "minLength": 2, "maxLength": 16, "default": "1h", "description": "1m to 30d"},
        "cn": {"type": "string", "minLength": 1, "maxLength": 64, "description": "bind it to this common name"},
        "dns": {"type": "array", "maxItems": 100, "items": {"type": "string", "minLength": 1, "maxLength": 253}},
    },
)
EST_REQUEST = _body(
    "NewEstUser",
    ["username"],
    {
        "username": {"type": "string", "minLength": 1, "maxLength": 255},
        "profile": {**NAME, "description": "the only profile it may enroll under (default: any EST profile)"},
        "password": {"type": "string", "minLength": 8, "maxLength": 1024, "description": "default: a random one"},
    },
)
CMP_REQUEST = _body(
    "NewCmpSecret",
    ["reference"],
    {
        "reference": {"type": "string", "minLength": 1, "maxLength": 128, "description": "senderKID"},
        "profile": {**NAME, "description": "default: [cmp] default_profile"},
        "secret": {"type": "string", "minLength": 8, "maxLength": 1024, "description": "default: a random one"},
    },
)

TYPE = QueryParam("type", {"type": "string", "enum": [t.value for t in CredentialType]}, "only this type")


async def list_credentials(call: Call) -> Reply:
    request = page_request(call.query)
    wanted = call.query.get("type")
    kinds = (CredentialType(wanted),) if wanted else tuple(CredentialType)
    views = await credentials.listing(call.ca, call.acting, kinds, after_id=request.after_id)
    return Reply(body=page(views[: fetch_size(request)], request, lambda v: v.id, as_dict))


async def create_eab(call: Call) -> Reply:
    body = call.body
    made = await credentials.create_eab(
        call.ca, call.server, call.acting, profile=body.get("profile"), key_id=body.get("key_id")
    )
    return _created(made)


async def create_scep_challenge(call: Call) -> Reply:
    body = call.body
    made = await credentials.create_scep_challenge(
        call.ca,
        call.server,
        call.acting,
        profile=body["profile"],
        ttl=_duration(body.get("ttl", "1h")),
        cn=body.get("cn"),
        dns=list(body.get("dns", [])),
    )
    return _created(made)


async def create_est_user(call: Call) -> Reply:
    body = call.body
    made = await credentials.create_est_user(
        call.ca,
        call.server,
        call.acting,
        username=body["username"],
        profile=body.get("profile"),
        password=body.get("password"),
    )
    return _created(made)


async def create_cmp_secret(call: Call) -> Reply:
    body = call.body
    made = await credentials.create_cmp_secret(
        call.ca,
        call.server,
        call.acting,
        reference=body["reference"],
        profile=body.get("profile"),
        secret=body.get("secret"),
    )
    return _created(made)


async def revoke_credential(call: Call) -> Reply:
    return Reply(body=as_dict(await credentials.revoke(call.ca, call.acting, path_id(call))))


def _created(made: Created) -> Reply:
    return Reply(201, {"credential": as_dict(made.credential), "secret": made.secret})


def _duration(text: str) -> dt.timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise Problem("invalid-body", f"body.ttl: {exc}") from None


def as_dict(view: CredentialView) -> dict[str, Any]:
    return {
        "id": view.id,
        "type": view.type.value,
        "name": view.name,
        "profile": view.profile,
        "identities": list(view.identities),
        "state": view.state,
        "bound_to": view.bound_to,
        "created_at": _when(view.created_at),
        "expires_at": _when(view.expires_at),
        "used_at": _when(view.used_at),
    }


def _when(moment: dt.datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def _create(path: str, operation: str, summary: str, handler: Any, body: dict[str, Any]) -> Endpoint:
    return Endpoint(
        "POST",
        f"/credentials/{path}",
        operation,
        summary,
        Permission.CREDENTIALS_MANAGE,
        handler,
        {201: CREATED},
        body=body,
        tag="credentials",
    )


ENDPOINTS = (
    Endpoint(
        "GET",
        "/credentials",
        "listCredentials",
        "Protocol credentials (EAB keys, SCEP challenges, EST users, CMP secrets), never their secrets",
        Permission.CREDENTIALS_READ,
        list_credentials,
        {200: page_schema(CREDENTIAL)},
        query=(TYPE, *PAGING),
        tag="credentials",
    ),
    _create("acme-eab", "createEabKey", "A new ACME EAB key id and HMAC key", create_eab, EAB_REQUEST),
    _create(
        "scep-challenge",
        "createScepChallenge",
        "A one-time SCEP challenge for a profile (as Intune or Jamf fetch them)",
        create_scep_challenge,
        SCEP_REQUEST,
    ),
    _create("est-user", "createEstUser", "A new EST HTTP Basic user", create_est_user, EST_REQUEST),
    _create(
        "cmp-secret", "createCmpSecret", "A new CMP shared secret (MAC protection)", create_cmp_secret, CMP_REQUEST
    ),
    Endpoint(
        "POST",
        "/credentials/{id}/revoke",
        "revokeCredential",
        "Withdraw a credential",
        Permission.CREDENTIALS_MANAGE,
        revoke_credential,
        {200: CREDENTIAL},
        tag="credentials",
    ),
)
