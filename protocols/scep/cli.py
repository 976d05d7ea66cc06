"""The operator's SCEP commands: one-time challenges (SCEP-15), as NDES and MDM tools hand them out.

``tetra scep challenge --profile P [--ttl 1h] [--cn NAME] [--dns NAME ...]`` makes a challenge
good for one PKCSReq under profile P within the ttl, and prints it alone on its last line, so a
provisioning script takes ``tail -n1``. Names given bind it: they are stored as the challenge's
identities, ``cn:NAME`` for the subject's common name and ``dns:NAME`` (lower case) for a DNS
subjectAltName (ca.enrollment.Identifier's form), and a CSR asking for any other name is
refused. ``tetra scep challenge list`` shows each challenge's state, never the challenge itself
(only its hash is stored); ``tetra scep challenge revoke ID`` withdraws an unused one.

One command with an optional action word rather than three: ``challenge`` itself creates, as
the issue and NDES operators expect, and the server's command tree cannot make a word both a
command and a group.
"""

from __future__ import annotations

import argparse
import datetime as dt

from ca.durations import parse_duration
from ca.errors import UsageError
from ca.records import Credential
from protocols.base import CliCommand, ProtocolContext
from protocols.scep.config import ScepConfig

PROTOCOL = "scep"
KIND = "challenge"
MIN_TTL = dt.timedelta(minutes=1)
MAX_TTL = dt.timedelta(days=30)  # a challenge is a bearer secret: it should not outlive a rollout
MAX_CN = 64  # ub-common-name, RFC 5280 Appendix A
MAX_DNS = 253


def _actor(args: argparse.Namespace) -> str:
    return f"cli:{args.operator}"


def scep_profile(ctx: ProtocolContext[ScepConfig], name: str) -> str:
    """``name`` if SCEP enrols under it and would accept a one-time challenge there, else a
    one-line refusal (a challenge that can never work is worse than none)."""
    profile = ctx.core.profiles.get(name)
    if profile is None:
        raise UsageError(f"no profile named {name!r}")
    if PROTOCOL not in profile.protocols:
        raise UsageError(
            f"profile {name!r} does not allow SCEP (its protocols: {', '.join(sorted(profile.protocols))})"
        )
    settings = ctx.config.settings(name)
    if settings.webhook is not None:
        raise UsageError(f"profile {name!r} has a validation webhook, which alone judges its challenges")
    if not settings.one_time_challenges:
        raise UsageError(f"profile {name!r} takes no one-time challenges ([scep.profiles.{name}] one_time_challenges)")
    return name


def challenge_ttl(text: str) -> dt.timedelta:
    try:
        ttl = parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--ttl: {exc}") from None
    if not MIN_TTL <= ttl <= MAX_TTL:
        raise UsageError(f"--ttl: {text!r} is outside 1m to 30d")
    return ttl


def bound_identities(cn: str | None, dns: list[str]) -> tuple[str, ...]:
    """The names a challenge is bound to, as stored: ("cn:NAME", "dns:name", ...)."""
    names: list[str] = []
    if cn is not None:
        if not cn or len(cn) > MAX_CN or not cn.isprintable():
            raise UsageError(f"--cn: a common name is 1 to {MAX_CN} printable characters")
        names.append(f"cn:{cn}")
    for name in dns:
        if not name or len(name) > MAX_DNS or not name.isascii() or not name.isprintable() or " " in name:
            raise UsageError(f"--dns: {name!r} is not a DNS name")
        names.append(f"dns:{name.lower().rstrip('.')}")
    return tuple(dict.fromkeys(names))


async def create_one_time_challenge(
    ctx: ProtocolContext[ScepConfig], profile: str, *, ttl: dt.timedelta, identities: tuple[str, ...], actor: str
) -> tuple[str, dt.datetime]:
    """A one-time challenge for ``profile`` (checked by scep_profile), valid for ``ttl`` and
    bound to ``identities`` (bound_identities' form): the challenge and when it expires.
    `tetra scep challenge` and POST /credentials/scep-challenge both make them here."""
    scep_profile(ctx, profile)
    if not MIN_TTL <= ttl <= MAX_TTL:
        raise UsageError("a challenge lives 1m to 30d")
    secret = await ctx.core.credentials.create_challenge(
        PROTOCOL, profile=profile, identities=identities, ttl=ttl, actor=actor
    )
    return secret, ctx.core.clock.now() + ttl


async def challenge(ctx: ProtocolContext[ScepConfig], args: argparse.Namespace) -> int:
    if args.action == "list":
        return await _list(ctx, args)
    if args.action == "revoke":
        return await _revoke(ctx, args)
    if args.id is not None:
        raise UsageError(f"unexpected argument {args.id!r} (did you mean `challenge revoke {args.id}`?)")
    if not args.profile:
        raise UsageError("--profile is required to create a challenge")
    ttl = challenge_ttl(args.ttl)
    identities = bound_identities(args.cn, args.dns)
    secret, expires = await create_one_time_challenge(
        ctx, args.profile, ttl=ttl, identities=identities, actor=_actor(args)
    )
    profile = args.profile
    bound = f", only for {', '.join(identities)}" if identities else ""
    print(f"one-time SCEP challenge for profile {profile}, valid until {_when(expires)}{bound}:")
    print(secret)
    return 0


def _state(credential: Credential, revoked: bool, now: dt.datetime) -> str:
    """A one-time challenge still usable has not been used yet: "unused" says it to an operator."""
    state = credential.state(revoked, now)
    return "unused" if state == "active" else state


def _when(moment: dt.datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "-"


async def _list(ctx: ProtocolContext[ScepConfig], args: argparse.Namespace) -> int:
    if args.id is not None or args.cn is not None or args.dns:
        raise UsageError("`challenge list` takes only --profile")
    now = ctx.core.clock.now()
    rows = [
        (c, _state(c, revoked, now))
        for c, revoked in sorted(await ctx.core.credentials.list_credentials(PROTOCOL, KIND), key=lambda r: r[0].id)
        if not args.profile or c.profile == args.profile
    ]
    if not rows:
        print("no SCEP challenges")
        return 0
    print(f"{'ID':>6}  {'STATE':<8} {'PROFILE':<16} {'CREATED':<20} {'EXPIRES':<20} NAMES")
    for c, state in rows:
        names = ",".join(c.identities) or "-"
        print(
            f"{c.id:>6}  {state:<8} {c.profile or '-':<16} {_when(c.created_at):<20} {_when(c.expires_at):<20} {names}"
        )
    return 0


async def _revoke(ctx: ProtocolContext[ScepConfig], args: argparse.Namespace) -> int:
    if args.id is None or not args.id.isdigit():
        raise UsageError("`challenge revoke` takes the challenge's ID from `challenge list`")
    wanted = int(args.id)
    rows = await ctx.core.credentials.list_credentials(PROTOCOL, KIND)
    found = [c for c, revoked in rows if c.id == wanted and not revoked]
    if not found or not await ctx.core.credentials.revoke(PROTOCOL, found[0].key_id, actor=_actor(args)):
        raise UsageError(f"no active SCEP challenge with ID {wanted}")
    print(f"SCEP challenge {wanted} revoked")
    return 0


def _challenge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action", nargs="?", choices=("list", "revoke"), help="list or revoke challenges (default: create one)"
    )
    parser.add_argument("id", nargs="?", help="revoke: the challenge's ID from `challenge list`")
    parser.add_argument("--profile", default="", help="create: the profile it enrols under (list: filter)")
    parser.add_argument("--ttl", default="1h", help="create: how long it is valid, e.g. 30m, 1h, 2d (default 1h)")
    parser.add_argument("--cn", help="create: bind it to this subject common name")
    parser.add_argument(
        "--dns", action="append", default=[], help="create: bind it to this DNS subjectAltName (repeatable)"
    )


COMMANDS = (
    CliCommand(
        ("challenge",),
        "one-time challenges: create (--profile P), list, revoke ID",
        challenge,
        _challenge_arguments,
    ),
)
