"""Certificate profiles: GET /profiles, GET /profiles/{name} (with its file's TOML), and
PUT /profiles/{name} for administrators: `{"toml": "..."}` or `{"profile": {...}}`, checked as
a file would be, written atomically into the profiles directory and reloaded in this process
(other workers on SIGHUP; server/manage/actions/profiles.py)."""

from __future__ import annotations

from typing import Any

from ca.operators.roles import Permission
from ca.profiles.model import Profile
from server.manage.actions import profiles
from server.manage.endpoint import Call, Endpoint, Reply

PROFILE: dict[str, Any] = {
    "title": "Profile",
    "type": "object",
    "required": ["name", "description", "issuer", "protocols", "approval", "four_eyes", "teams"],
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "issuer": {"type": ["string", "null"], "description": "null: the default issuing CA"},
        "protocols": {"type": "array", "items": {"type": "string"}},
        "approval": {"type": "string", "enum": ["auto", "manual"]},
        "four_eyes": {"type": "boolean"},
        "teams": {"type": "array", "items": {"type": "string"}},
        "key_types": {"type": "array", "items": {"type": "string"}},
        "server_key_generation": {"type": "boolean"},
        "default_days": {"type": "integer"},
        "max_days": {"type": "integer"},
        "san_types": {"type": "array", "items": {"type": "string"}},
    },
}
LIST: dict[str, Any] = {
    "type": "object",
    "required": ["items", "next"],
    "properties": {"items": {"type": "array", "items": PROFILE}, "next": {"type": "null"}},
}
DETAIL: dict[str, Any] = {
    "title": "ProfileDetail",
    "type": "object",
    "required": ["profile", "toml"],
    "properties": {"profile": PROFILE, "toml": {"type": "string", "description": "the profile file as on disk"}},
}
WRITE: dict[str, Any] = {
    "title": "ProfileWrite",
    "description": "The profile file's TOML text, or the same as a JSON object (conf/profiles/README.md).",
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "maxProperties": 1,
    "properties": {
        "toml": {"type": "string", "minLength": 1, "maxLength": profiles.MAX_TEXT},
        "profile": {"type": "object"},
    },
}


async def list_profiles(call: Call) -> Reply:
    return Reply(body={"items": [as_dict(p) for p in profiles.listing(call.ca, call.acting)], "next": None})


async def show_profile(call: Call) -> Reply:
    profile, text = await profiles.show(call.ca, call.acting, call.path["name"])
    return Reply(body={"profile": as_dict(profile), "toml": text})


async def write_profile(call: Call) -> Reply:
    body = call.body
    written = await profiles.write(
        call.ca,
        call.acting,
        call.server.profiles_dir,
        call.path["name"],
        toml=body.get("toml"),
        table=body.get("profile"),
    )
    return Reply(201 if written.created else 200, as_dict(written.profile))


def as_dict(profile: Profile) -> dict[str, Any]:
    return {
        "name": profile.name,
        "description": profile.description,
        "issuer": profile.issuer,
        "protocols": sorted(profile.protocols),
        "approval": profile.approval,
        "four_eyes": profile.four_eyes,
        "teams": sorted(profile.teams),
        "key_types": sorted(profile.key_types),
        "server_key_generation": profile.server_key_generation,
        "default_days": profile.default_days,
        "max_days": profile.max_days,
        "san_types": sorted(profile.san_types),
    }


ENDPOINTS = (
    Endpoint(
        "GET",
        "/profiles",
        "listProfiles",
        "Every certificate profile",
        Permission.PROFILES_READ,
        list_profiles,
        {200: LIST},
        tag="profiles",
    ),
    Endpoint(
        "GET",
        "/profiles/{name}",
        "getProfile",
        "One profile and its file",
        Permission.PROFILES_READ,
        show_profile,
        {200: DETAIL},
        tag="profiles",
    ),
    Endpoint(
        "PUT",
        "/profiles/{name}",
        "putProfile",
        "Create or replace a profile (checked as a file is; this process reloads, other workers on SIGHUP)",
        Permission.PROFILES_WRITE,
        write_profile,
        {200: PROFILE, 201: PROFILE},
        body=WRITE,
        tag="profiles",
    ),
)
