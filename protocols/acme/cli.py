"""The operator's ACME commands: `tetra acme eab create | eab revoke`, `tetra acme renew-now`.

They run against the narrow core (ctx.core) like the handlers do; server/cli mounts them,
adds --config and --operator, and prints a CAError as one line.
"""

from __future__ import annotations

import argparse
from typing import Any

from ca.errors import BadRequest
from ca.records import parse_serial
from protocols.acme.b64 import b64e
from protocols.acme.store.renewals import RenewNowStore
from protocols.base import CliCommand, ProtocolContext

PROTOCOL = "acme"  # the credentials' protocol: an EAB key is good for ACME only


def _actor(args: argparse.Namespace) -> str:
    return f"cli:{args.operator}"


def _known_profile(ctx: ProtocolContext[Any], name: str) -> str:
    if name not in ctx.core.profiles:
        raise BadRequest(f"no profile named {name!r}")
    return name


async def create_eab_key(
    ctx: ProtocolContext[Any], *, profile: str | None, key_id: str | None, actor: str
) -> tuple[str, bytes]:
    """A new EAB key id and HMAC key, limited to ``profile`` if given: what `tetra acme eab
    create` and the management API's POST /credentials/acme-eab both make."""
    if profile is not None:
        _known_profile(ctx, profile)
    if key_id is not None and await ctx.core.credentials.get_mac_key(PROTOCOL, key_id) is not None:
        raise BadRequest(f"an EAB key {key_id!r} exists; revoke it first")
    return await ctx.core.credentials.create_mac_key(PROTOCOL, key_id=key_id, profile=profile, actor=actor)


async def eab_create(ctx: ProtocolContext[Any], args: argparse.Namespace) -> int:
    """An EAB key for `newAccount` (RFC 8555 §7.3.4): HS256, printed as cert-manager wants it."""
    key_id, secret = await create_eab_key(
        ctx, profile=args.profile or None, key_id=args.key_id or None, actor=_actor(args)
    )
    print(f"key id:   {key_id}")
    print(f"hmac key: {b64e(secret)}")
    return 0


def _eab_create_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="", help="the only profile accounts bound by this key may use")
    parser.add_argument("--key-id", default="", help="choose the key id (default: random)")


async def eab_revoke(ctx: ProtocolContext[Any], args: argparse.Namespace) -> int:
    if not await ctx.core.credentials.revoke(PROTOCOL, args.key_id, actor=_actor(args)):
        raise BadRequest(f"no active EAB key {args.key_id!r}")
    print(f"revoked EAB key {args.key_id}")
    return 0


def _eab_revoke_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key_id")


async def renew_now(ctx: ProtocolContext[Any], args: argparse.Namespace) -> int:
    """ARI lever (RFC 9773): make certificates of a serial, profile or issuing CA renew now."""
    if args.serial:
        record = await ctx.core.find_by_serial(parse_serial(args.serial))
        scope, value = "serial", record.serial_hex
    elif args.profile:
        scope, value = "profile", _known_profile(ctx, args.profile)
    else:
        if args.issuer not in ctx.core.issuer_names:
            raise BadRequest(f"no issuer named {args.issuer!r}")
        scope, value = "issuer", args.issuer
    await RenewNowStore(ctx.core.state).add(scope, value, _actor(args), ctx.core.clock.now())
    print(f"renewalInfo now suggests renewing at once for {scope} {value}")
    return 0


def _renew_now_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--serial", help="one certificate (hexadecimal serial)")
    group.add_argument("--profile", help="every certificate of a profile")
    group.add_argument("--issuer", help="every certificate of an issuing CA (rotation)")


COMMANDS = (
    CliCommand(("eab", "create"), "create an EAB key id and HMAC key", eab_create, _eab_create_arguments),
    CliCommand(("eab", "revoke"), "revoke an EAB key", eab_revoke, _eab_revoke_arguments),
    CliCommand(("renew-now",), "ARI: ask clients to renew now", renew_now, _renew_now_arguments),
)
