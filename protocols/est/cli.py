"""The operator's EST commands: `tetra est user add | list | remove` (HTTP Basic users).

A user's password is stored as a slow hash (scrypt, ca/credentials.py). ``--label`` binds the
user to the profile that label selects: it may enroll under that profile only.
"""

from __future__ import annotations

import argparse
import secrets
from typing import Any

from ca.errors import BadRequest
from protocols.base import CliCommand, ProtocolContext
from protocols.est.auth import PROTOCOL

KIND = "password"


def _actor(args: argparse.Namespace) -> str:
    return f"cli:{args.operator}"


async def add_user(
    ctx: ProtocolContext[Any], name: str, *, profile: str | None, password: str | None, actor: str
) -> str:
    """A new HTTP Basic user, limited to ``profile`` if given; returns its password (``password``,
    or a random one when None). `tetra est user add` and POST /credentials/est-user both add
    users through here."""
    if not name or ":" in name or len(name) > 255 or not name.isprintable():
        raise BadRequest("an EST user name is 1 to 255 printable characters without ':'")
    if profile is not None:
        found = ctx.core.profiles.get(profile)
        if found is None:
            raise BadRequest(f"no profile named {profile!r}")
        if PROTOCOL not in found.protocols:
            raise BadRequest(f"profile {profile!r} does not allow EST")
    taken = {c.key_id for c, _ in await ctx.core.credentials.list_credentials(PROTOCOL, KIND)}
    if name in taken:
        raise BadRequest(f"EST user {name!r} exists (or existed: a removed name is not reused)")
    password = password or secrets.token_urlsafe(18)
    await ctx.core.credentials.create_password(PROTOCOL, name, password, profile=profile, actor=actor)
    return password


async def user_add(ctx: ProtocolContext[Any], args: argparse.Namespace) -> int:
    name: str = args.name
    profile = None
    if args.label:
        default = ctx.config.default_profile or ctx.default_profile
        profile = ctx.labels.profile(args.label) if args.label != "-" else default
        if profile is None:
            raise BadRequest(f"no EST label {args.label!r} (labels: {', '.join(ctx.labels.labels()) or 'none'})")
    password = await add_user(ctx, name, profile=profile, password=args.password or None, actor=_actor(args))
    where = f"profile {profile}" if profile else "every EST profile that accepts passwords"
    print(f"EST user {name} added ({where})")
    if not args.password:
        print(f"password: {password}")
    return 0


def _user_add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name")
    parser.add_argument("--label", default="", help="enroll only under the profile this label selects")
    parser.add_argument("--password", default="", help="the password (default: a random one, printed once)")


async def user_list(ctx: ProtocolContext[Any], args: argparse.Namespace) -> int:
    rows = await ctx.core.credentials.list_credentials(PROTOCOL, KIND)
    active = [(c.key_id, c.profile or "(any)") for c, revoked in rows if not revoked]
    if not active:
        print("no EST users")
        return 0
    width = max(len("USER"), *(len(name) for name, _ in active))
    print(f"{'USER':<{width}}  PROFILE")
    for name, profile in active:
        print(f"{name:<{width}}  {profile}")
    return 0


async def user_remove(ctx: ProtocolContext[Any], args: argparse.Namespace) -> int:
    if not await ctx.core.credentials.revoke(PROTOCOL, args.name, actor=_actor(args)):
        raise BadRequest(f"no EST user {args.name!r}")
    print(f"EST user {args.name} removed")
    return 0


def _user_remove_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name")


COMMANDS = (
    CliCommand(("user", "add"), "add an HTTP Basic user", user_add, _user_add_arguments),
    CliCommand(("user", "list"), "list the HTTP Basic users", user_list),
    CliCommand(("user", "remove"), "remove an HTTP Basic user", user_remove, _user_remove_arguments),
)
