"""The operator's CMP commands: the shared secrets MAC-protected requests are checked with.

``tetra cmp secret add REF [--profile P] [--secret S]`` stores a secret under the sender
reference REF (what `openssl cmp -ref REF` puts in senderKID) for profile P (default: [cmp]
default_profile, else the server's default profile). Without --secret, 32 random bytes are
drawn and printed base64url-encoded as the last line of stdout: that text is the secret, as
the client must type it (`-secret pass:TEXT`). ``tetra cmp secret list`` shows references and
profiles, never secrets; ``tetra cmp secret revoke REF`` withdraws one.
"""

from __future__ import annotations

import argparse
import secrets

from ca.errors import UsageError
from protocols.base import CliCommand, ProtocolContext
from protocols.cmp.config import CmpConfig

PROTOCOL = "cmp"
KIND = "mac-key"
MIN_SECRET = 8
MAX_REFERENCE = 128


def _actor(args: argparse.Namespace) -> str:
    return f"cli:{args.operator}"


def _profile(ctx: ProtocolContext[CmpConfig], name: str) -> str:
    name = name or ctx.config.default_profile or ctx.default_profile
    profile = ctx.core.profiles.get(name)
    if profile is None:
        raise UsageError(f"no profile named {name!r}")
    if PROTOCOL not in profile.protocols:
        raise UsageError(f"profile {name!r} does not allow CMP (its protocols: {', '.join(sorted(profile.protocols))})")
    return name


def _reference(text: str) -> str:
    if not text or len(text) > MAX_REFERENCE or not text.isprintable() or text.strip() != text:
        raise UsageError(f"a sender reference is 1 to {MAX_REFERENCE} printable characters, no edge spaces")
    return text


async def add_secret(
    ctx: ProtocolContext[CmpConfig], reference: str, *, profile: str, secret: str | None, actor: str
) -> tuple[str, str]:
    """A shared secret under ``reference`` for ``profile`` ("" for the default): the profile
    and the secret (``secret``, or 32 random bytes in base64url when None). `tetra cmp secret
    add` and POST /credentials/cmp-secret both store secrets through here."""
    reference = _reference(reference)
    profile = _profile(ctx, profile)
    if secret is not None and len(secret) < MIN_SECRET:
        raise UsageError(f"--secret: a shared secret is at least {MIN_SECRET} characters")
    existing = await ctx.core.credentials.get_mac_key(PROTOCOL, reference)
    if existing is not None:
        raise UsageError(f"a CMP secret with reference {reference!r} exists; revoke it first")
    text = secret if secret is not None else secrets.token_urlsafe(32)
    await ctx.core.credentials.create_mac_key(
        PROTOCOL, key_id=reference, profile=profile, secret=text.encode(), actor=actor
    )
    return profile, text


async def add(ctx: ProtocolContext[CmpConfig], args: argparse.Namespace) -> int:
    reference = args.reference
    profile, text = await add_secret(ctx, reference, profile=args.profile, secret=args.secret, actor=_actor(args))
    print(f"CMP secret {reference!r} added for profile {profile} (openssl cmp -ref {reference} -secret pass:...)")
    if args.secret is None:
        print(text)
    return 0


async def list_secrets(ctx: ProtocolContext[CmpConfig], args: argparse.Namespace) -> int:
    rows = sorted(await ctx.core.credentials.list_credentials(PROTOCOL, KIND), key=lambda row: row[0].id)
    if not rows:
        print("no CMP secrets")
        return 0
    print(f"{'REFERENCE':<32} {'STATE':<8} {'PROFILE':<16} CREATED")
    for credential, revoked in rows:
        created = credential.created_at.strftime("%Y-%m-%dT%H:%M:%SZ") if credential.created_at else "-"
        state = "revoked" if revoked else "active"
        print(f"{credential.key_id:<32} {state:<8} {credential.profile or '-':<16} {created}")
    return 0


async def revoke(ctx: ProtocolContext[CmpConfig], args: argparse.Namespace) -> int:
    reference = _reference(args.reference)
    if not await ctx.core.credentials.revoke(PROTOCOL, reference, actor=_actor(args)):
        raise UsageError(f"no active CMP secret with reference {reference!r}")
    print(f"CMP secret {reference!r} revoked")
    return 0


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reference", help="the sender reference (senderKID; openssl cmp -ref)")
    parser.add_argument("--profile", default="", help="the profile it enrols under (default: [cmp] default_profile)")
    parser.add_argument("--secret", help="the secret itself (default: generate one and print it)")


def _reference_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reference", help="the sender reference")


COMMANDS = (
    CliCommand(("secret", "add"), "store a shared secret for MAC-protected requests", add, _add_arguments),
    CliCommand(("secret", "list"), "list the shared secrets (never their values)", list_secrets),
    CliCommand(("secret", "revoke"), "withdraw a shared secret", revoke, _reference_argument),
)
