"""Users and API tokens: GET/POST /users, GET /users/{name}, POST /users/{name}/disable and
/enable, GET /users/{name}/tokens (administrators and auditors); GET/POST /tokens and POST
/tokens/{id}/revoke (every user, its own tokens; an administrator anyone's); GET /me.
A token's secret is in POST /tokens' 201 answer only (OPS-10)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ca.operators.model import ApiToken, User
from ca.operators.roles import Permission, Role
from server.manage.actions import users
from server.manage.endpoint import Call, Endpoint, Reply, path_id
from server.manage.times import moment

_TIME = {"type": ["string", "null"], "format": "date-time"}
_NAME = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9._@-]+$"}
_TEAM = {"type": "string", "minLength": 1, "maxLength": 255}
_PERMISSIONS = {"type": "array", "items": {"type": "string", "enum": [p.value for p in Permission]}}
_EXPIRY = {"type": "string", "minLength": 10, "maxLength": 40, "description": "ISO 8601; UTC if no offset"}

USER: dict[str, Any] = {
    "title": "User",
    "type": "object",
    "required": ["name", "role", "teams", "guest_access", "created_at", "expires_at", "disabled", "has_password"],
    "properties": {
        "name": {"type": "string"},
        "role": {"type": "string", "enum": [r.value for r in Role]},
        "teams": {"type": "array", "items": {"type": "string"}},
        "guest_access": {"type": ["string", "null"]},
        "created_at": _TIME,
        "expires_at": _TIME,
        "disabled": {"type": "boolean"},
        "has_password": {"type": "boolean"},
    },
}
TOKEN: dict[str, Any] = {
    "title": "ApiToken",
    "description": "A token's record, never its secret.",
    "type": "object",
    "required": ["id", "user", "label", "scopes", "created_at", "expires_at", "revoked_at", "last_used_at"],
    "properties": {
        "id": {"type": "integer"},
        "user": {"type": "string"},
        "label": {"type": "string"},
        "scopes": {**_PERMISSIONS, "type": ["array", "null"], "description": "null: all the user's permissions"},
        "created_at": _TIME,
        "expires_at": _TIME,
        "revoked_at": _TIME,
        "last_used_at": _TIME,
    },
}
NEW_TOKEN: dict[str, Any] = {
    "title": "CreatedToken",
    "type": "object",
    "required": ["token", "secret"],
    "properties": {"token": TOKEN, "secret": {"type": "string", "description": "the bearer token: shown once"}},
}
ME: dict[str, Any] = {
    "title": "Me",
    "type": "object",
    "required": ["user", "role", "teams", "all_teams", "permissions", "token_id"],
    "properties": {
        "user": {"type": "string"},
        "role": {"type": "string"},
        "teams": {"type": "array", "items": {"type": "string"}},
        "all_teams": {"type": "boolean"},
        "permissions": _PERMISSIONS,
        "token_id": {"type": ["integer", "null"]},
    },
}
ADD_USER: dict[str, Any] = {
    "title": "NewUser",
    "type": "object",
    "required": ["name", "role"],
    "additionalProperties": False,
    "properties": {
        "name": _NAME,
        "role": {"type": "string", "enum": [r.value for r in Role]},
        "teams": {"type": "array", "maxItems": 100, "items": _TEAM},
        "guest_access": {"type": "string", "enum": ["read", "request"]},
        "expires_at": _EXPIRY,
        "password": {"type": "string", "minLength": 12, "maxLength": 1024, "description": "for the dashboard"},
    },
}
ADD_TOKEN: dict[str, Any] = {
    "title": "NewToken",
    "type": "object",
    "required": ["label"],
    "additionalProperties": False,
    "properties": {
        "label": {"type": "string", "minLength": 1, "maxLength": 64},
        "scopes": {
            "type": "array",
            "minItems": 1,
            "maxItems": len(Permission) + 1,
            "uniqueItems": True,
            "items": {"type": "string", "enum": ["read", *(p.value for p in Permission)]},
            "description": "permissions, or read for every read permission you hold; default: all yours",
        },
        "expires_at": _EXPIRY,
    },
}
USER_LIST = {"type": "object", "required": ["items", "next"], "properties": {"items": {"type": "array", "items": USER}}}
TOKEN_LIST = {
    "type": "object",
    "required": ["items", "next"],
    "properties": {"items": {"type": "array", "items": TOKEN}},
}


async def list_users(call: Call) -> Reply:
    return Reply(body={"items": [user_dict(u) for u in await users.list_users(call.ca, call.acting)], "next": None})


async def show_user(call: Call) -> Reply:
    return Reply(body=user_dict(await users.show_user(call.ca, call.acting, call.path["name"])))


async def add_user(call: Call) -> Reply:
    body = call.body
    user = await users.add_user(
        call.ca,
        call.acting,
        body["name"],
        body["role"],
        frozenset(body.get("teams", [])),
        guest_access=body.get("guest_access"),
        expires_at=moment(body.get("expires_at"), "body.expires_at"),
        password=body.get("password"),
    )
    return Reply(201, user_dict(user))


async def disable_user(call: Call) -> Reply:
    return Reply(body=user_dict(await users.disable_user(call.ca, call.acting, call.path["name"])))


async def enable_user(call: Call) -> Reply:
    return Reply(body=user_dict(await users.enable_user(call.ca, call.acting, call.path["name"])))


async def user_tokens(call: Call) -> Reply:
    tokens = await users.user_tokens(call.ca, call.acting, call.path["name"])
    return Reply(body={"items": [token_dict(t) for t in tokens], "next": None})


async def own_tokens(call: Call) -> Reply:
    return Reply(body={"items": [token_dict(t) for t in await users.own_tokens(call.ca, call.acting)], "next": None})


async def create_token(call: Call) -> Reply:
    body = call.body
    token, secret = await users.create_own_token(
        call.ca,
        call.acting,
        label=body["label"],
        scope_words=list(body.get("scopes", [])),
        expires_at=moment(body.get("expires_at"), "body.expires_at"),
    )
    return Reply(201, {"token": token_dict(token), "secret": secret})


async def revoke_token(call: Call) -> Reply:
    return Reply(body=token_dict(await users.revoke_token(call.ca, call.acting, path_id(call))))


async def me(call: Call) -> Reply:
    p = call.acting
    return Reply(
        body={
            "user": p.user,
            "role": p.role.value,
            "teams": sorted(p.teams),
            "all_teams": p.all_teams,
            "permissions": sorted(perm.value for perm in p.permissions),
            "token_id": p.token_id,
        }
    )


def user_dict(user: User) -> dict[str, Any]:
    return {
        "name": user.name,
        "role": user.role.value,
        "teams": sorted(user.teams),
        "guest_access": user.guest_access,
        "created_at": _iso(user.created_at),
        "expires_at": _iso(user.expires_at),
        "disabled": user.disabled_at is not None,
        "has_password": user.has_password,
    }


def token_dict(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "user": token.user,
        "label": token.label,
        "scopes": None if token.scopes is None else sorted(s.value for s in token.scopes),
        "created_at": _iso(token.created_at),
        "expires_at": _iso(token.expires_at),
        "revoked_at": _iso(token.revoked_at),
        "last_used_at": _iso(token.last_used_at),
    }


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _users(
    method: str, path: str, operation: str, summary: str, permission: Permission, handler: Any, **more: Any
) -> Endpoint:
    return Endpoint(method, path, operation, summary, permission, handler, tag="users", **more)


ENDPOINTS = (
    Endpoint(
        "GET",
        "/me",
        "getMe",
        "Who am I: user, role, teams, permissions",
        None,
        me,
        {200: ME},
        tag="users",
        any_user=True,
    ),
    _users("GET", "/users", "listUsers", "Every user", Permission.USERS_READ, list_users, responses={200: USER_LIST}),
    _users(
        "POST",
        "/users",
        "addUser",
        "Add a user",
        Permission.USERS_MANAGE,
        add_user,
        responses={201: USER},
        body=ADD_USER,
    ),
    _users("GET", "/users/{name}", "getUser", "One user", Permission.USERS_READ, show_user, responses={200: USER}),
    _users(
        "POST",
        "/users/{name}/disable",
        "disableUser",
        "Refuse a user's tokens and logins from now on",
        Permission.USERS_MANAGE,
        disable_user,
        responses={200: USER},
    ),
    _users(
        "POST",
        "/users/{name}/enable",
        "enableUser",
        "Let a user in again",
        Permission.USERS_MANAGE,
        enable_user,
        responses={200: USER},
    ),
    _users(
        "GET",
        "/users/{name}/tokens",
        "listUserTokens",
        "A user's API tokens (never their secrets)",
        Permission.USERS_READ,
        user_tokens,
        responses={200: TOKEN_LIST},
    ),
    Endpoint(
        "GET",
        "/tokens",
        "listOwnTokens",
        "Your own API tokens (never their secrets)",
        None,
        own_tokens,
        {200: TOKEN_LIST},
        tag="users",
        any_user=True,
    ),
    Endpoint(
        "POST",
        "/tokens",
        "createOwnToken",
        "A new API token of yours: the secret is in this answer only",
        None,
        create_token,
        {201: NEW_TOKEN},
        body=ADD_TOKEN,
        tag="users",
        any_user=True,
    ),
    Endpoint(
        "POST",
        "/tokens/{id}/revoke",
        "revokeToken",
        "Revoke one of your tokens (an administrator: anyone's)",
        None,
        revoke_token,
        {200: TOKEN},
        tag="users",
        any_user=True,
    ),
)
