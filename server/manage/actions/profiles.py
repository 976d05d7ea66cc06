"""Certificate profiles as the management plane reads and writes them.

A profile written through the API becomes a file in the profiles directory, checked by
ca/profiles/loader.py exactly as a file would be at start-up (the same parse_profile, the same
refusals), and only then written: to a temporary file beside it, flushed, and renamed over the
old one (a reader sees the old file or the new, never half of one). This process then reloads
every profile from the directory, as SIGHUP does; the server's other worker processes keep
their profiles until they are sent SIGHUP (`systemctl reload tetra`).

A JSON object is written as the TOML it stands for, so the directory stays the one source of
truth an operator can read and edit by hand.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from ca.audit import AuditEvent
from ca.errors import BadRequest, ConfigError
from ca.files import replace_atomically
from ca.operators.principal import Principal
from ca.operators.roles import Permission
from ca.profiles.loader import load_profiles, parse_profile
from ca.profiles.model import Profile
from ca.service import CertificateAuthority
from ca.store.db import Tx
from server.manage.actions.access import require
from server.manage.actions.errors import NotVisible

WHAT = "profile"
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # a file stem, safe in a path and a URL
MAX_TEXT = 64 * 1024


@dataclass(frozen=True)
class Written:
    profile: Profile
    created: bool  # False: an existing profile was replaced


def listing(ca: CertificateAuthority, principal: Principal) -> list[Profile]:
    require(principal, Permission.PROFILES_READ)
    return sorted(ca.profiles.values(), key=lambda p: p.name)


async def show(ca: CertificateAuthority, principal: Principal, name: str) -> tuple[Profile, str]:
    """The profile and its file's text (what the API answers is what is on disk)."""
    require(principal, Permission.PROFILES_READ)
    profile = ca.profiles.get(name)
    if profile is None:
        raise NotVisible(WHAT)
    try:
        text = await asyncio.to_thread(Path(profile.source).read_text)
    except OSError:
        text = ""  # removed or unreadable since the last reload: the loaded profile still stands
    return profile, text


async def write(
    ca: CertificateAuthority, principal: Principal, directory: Path, name: str, *, toml: str | None, table: Any
) -> Written:
    """Profile ``name`` from TOML text or a JSON object (``table``), checked, written, reloaded;
    audited as profile.written with the file's SHA-256."""
    require(principal, Permission.PROFILES_WRITE)
    if not NAME.match(name):
        raise BadRequest("a profile name is 1 to 64 of a-z 0-9 _ -, starting with a letter or digit")
    text, data = _as_toml(toml, table)
    path = directory / f"{name}.toml"
    try:
        profile = parse_profile(data, name, str(path))
    except ConfigError as exc:
        raise BadRequest(str(exc)) from None
    if profile.issuer and profile.issuer not in ca.ca_names:
        raise BadRequest(f"profile {name}: unknown issuer {profile.issuer!r}")
    created = name not in ca.profiles
    data_bytes = text.encode()
    event = AuditEvent(
        principal.actor,
        "profile.written",
        f"profile/{name}",
        {"sha256": hashlib.sha256(data_bytes).hexdigest(), "created": created},
    )
    await _write_audited(ca, path, data_bytes, event)
    try:
        profiles = await asyncio.to_thread(load_profiles, directory)
    except ConfigError as exc:  # another file of the directory is broken: the new one is in place
        raise BadRequest(f"written, but the directory does not load: {exc}") from None
    ca.reload_profiles(profiles)
    return Written(ca.profiles[name], created)


async def _write_audited(ca: CertificateAuthority, path: Path, data: bytes, event: AuditEvent) -> None:
    """The file is replaced inside the transaction that appends its audit event. If that
    transaction fails once the file is replaced (an audit log that refuses the row, a store
    gone away), the old file is put back, so no profile change is ever left unaudited (OPS-07)."""
    previous = await asyncio.to_thread(_read_if_present, path)
    replaced = False

    def w(tx: Tx) -> None:
        nonlocal replaced
        tx.audit(event)
        replace_atomically(path, data)
        replaced = True

    try:
        await ca.db.write(w)
    except BaseException:
        if replaced:
            await asyncio.to_thread(_restore, path, previous)
        raise


def _read_if_present(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _restore(path: Path, previous: bytes | None) -> None:
    if previous is None:
        path.unlink(missing_ok=True)
    else:
        replace_atomically(path, previous)


def _as_toml(toml: str | None, table: Any) -> tuple[str, dict[str, Any]]:
    if toml is not None:
        if len(toml) > MAX_TEXT:
            raise BadRequest(f"a profile file is at most {MAX_TEXT} characters")
        try:
            return toml, tomllib.loads(toml)
        except tomllib.TOMLDecodeError as exc:
            raise BadRequest(f"not valid TOML: {exc}") from None
    try:
        text = tomli_w.dumps(table)
    except (TypeError, ValueError) as exc:  # a null, or a list mixing tables and values
        raise BadRequest(f"the profile cannot be written as TOML: {exc}") from None
    return text, tomllib.loads(text)
