"""Users and their API tokens: `tetra user ...` and `tetra token ...`.

The commands act on the CA's database as the management API does, through `ca.operators`, so
a user added here can log in to the dashboard and a token created here authenticates to the
API. What they change is audited as `cli:<--operator>`. A token is printed once, alone on the
last line of stdout (`TOKEN=$(tetra token create ci | tail -n 1)`); nothing prints a password
or a hash.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from server.cli.common import CaWork, CLIError, add_config_option, add_operator_option, on_ca_reading

if TYPE_CHECKING:
    from ca.operators.model import ApiToken, User
    from ca.service import CertificateAuthority
    from server.cli.common import Subcommands
    from server.config import ServerConfig


def _expiry(ca: CertificateAuthority, text: str | None) -> dt.datetime | None:
    """``--expires 30d``: that long from now (ca/durations.py reads it)."""
    from ca.durations import parse_duration

    if text is None:
        return None
    try:
        lasting = parse_duration(text)
    except ValueError as exc:
        raise CLIError(f"--expires: {exc}") from None
    if lasting <= dt.timedelta(0):
        raise CLIError(f"--expires {text!r}: a duration greater than zero")
    return ca.clock.now() + lasting


def _read_password(path: str) -> str:
    """The first line of ``--password-file`` ("-": stdin), so no password shows in `ps` or a shell history."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CLIError(f"--password-file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise CLIError(f"--password-file {path}: the first line is empty")
    return lines[0]


def _refusals_as_usage_errors(work: CaWork) -> CaWork:
    """The store's refusals of what the operator typed (a bad name, an unknown user, a guest
    without an expiry) are usage errors here: one line, exit 2, as argparse's own."""

    @functools.wraps(work)
    async def run(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
        from ca.errors import BadRequest

        try:
            return await work(args, ca, config)
        except BadRequest as exc:
            raise CLIError(exc.detail) from None

    return run


def _actor(args: argparse.Namespace) -> str:
    return f"cli:{args.operator}"


def _when(at: dt.datetime | None) -> str:
    return "-" if at is None else f"{at:%Y-%m-%d %H:%M}"


def _user_json(user: User) -> dict[str, object]:
    return {
        "name": user.name,
        "role": user.role.value,
        "teams": sorted(user.teams),
        "guest_access": user.guest_access,
        "created_at": user.created_at.isoformat(),
        "expires_at": None if user.expires_at is None else user.expires_at.isoformat(),
        "disabled_at": None if user.disabled_at is None else user.disabled_at.isoformat(),
        "has_password": user.has_password,
    }


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


# -- tetra user ---------------------------------------------------------------------------------
@on_ca_reading
@_refusals_as_usage_errors
async def user_add(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    password = _read_password(args.password_file) if args.password_file else None
    user = await ca.operators.users.add(
        args.name,
        args.role,
        args.team,
        actor=_actor(args),
        guest_access=args.guest_access,
        expires_at=_expiry(ca, args.expires),
        password=password,
    )
    teams = ", ".join(sorted(user.teams)) or "all teams"
    print(f"user {user.name} added: {user.role} ({teams}), expires {_when(user.expires_at)}")
    if not user.has_password:
        print(f"no password: {user.name} uses API tokens only (tetra user passwd to set one)")
    return 0


@on_ca_reading
@_refusals_as_usage_errors
async def user_list(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    users = await ca.operators.users.list()
    if args.format == "json":
        print(json.dumps([_user_json(user) for user in users], indent=2))
        return 0
    rows = [["NAME", "ROLE", "TEAMS", "GUEST", "EXPIRES", "DISABLED", "PASSWORD"]]
    for user in users:
        teams = ",".join(sorted(user.teams)) or "*"
        rows.append(
            [
                user.name,
                user.role.value,
                teams,
                user.guest_access or "-",
                _when(user.expires_at),
                _when(user.disabled_at),
                "yes" if user.has_password else "no",
            ]
        )
    _table(rows)
    return 0


@on_ca_reading
@_refusals_as_usage_errors
async def user_disable(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    await ca.operators.users.disable(args.name, actor=_actor(args))
    print(f"user {args.name} disabled: its tokens and logins are refused, its sessions ended")
    return 0


@on_ca_reading
@_refusals_as_usage_errors
async def user_enable(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    await ca.operators.users.enable(args.name, actor=_actor(args))
    print(f"user {args.name} enabled")
    return 0


@on_ca_reading
@_refusals_as_usage_errors
async def user_passwd(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    await ca.operators.users.set_password(args.name, _read_password(args.password_file), actor=_actor(args))
    print(f"password of {args.name} set")
    return 0


# -- tetra token --------------------------------------------------------------------------------
@on_ca_reading
@_refusals_as_usage_errors
async def token_create(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    from ca.operators.tokens import requested_scopes

    holder = ca.operators.users.principal(await ca.operators.users.get(args.name))
    try:
        scopes = requested_scopes(args.scope, holder.permissions)
    except ValueError as exc:
        raise CLIError(f"--scope: {exc}") from None
    token, secret = await ca.operators.tokens.create(
        args.name, label=args.label, scopes=scopes, expires_at=_expiry(ca, args.expires), actor=_actor(args)
    )
    scope_text = "all of the user's permissions" if token.scopes is None else ", ".join(sorted(token.scopes))
    print(f"token {token.id} for {token.user} ({token.label}): {scope_text}; expires {_when(token.expires_at)}")
    print("shown once, now: keep it in a secret store", file=sys.stderr)
    print(secret)
    return 0


def _token_row(token: ApiToken) -> list[str]:
    scopes = "*" if token.scopes is None else ",".join(sorted(token.scopes))
    return [
        str(token.id),
        token.user,
        token.label,
        scopes,
        _when(token.created_at),
        _when(token.expires_at),
        _when(token.revoked_at),
        _when(token.last_used_at),
    ]


@on_ca_reading
@_refusals_as_usage_errors
async def token_list(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    if args.name is not None:
        await ca.operators.users.get(args.name)  # an unknown user is an error, not an empty list
    tokens = await ca.operators.tokens.list(args.name)
    _table(
        [["ID", "USER", "LABEL", "SCOPES", "CREATED", "EXPIRES", "REVOKED", "LAST USED"]]
        + [_token_row(t) for t in tokens]
    )
    return 0


@on_ca_reading
@_refusals_as_usage_errors
async def token_revoke(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    token = await ca.operators.tokens.revoke(args.id, actor=_actor(args))
    print(f"token {token.id} of {token.user} ({token.label}) revoked")
    return 0


def add_commands(sub: Subcommands) -> None:
    from ca.operators.roles import GUEST_ACCESS, Role

    user = sub.add_parser("user", help="management-plane users: roles, teams, passwords").add_subparsers(
        dest="action", required=True
    )
    p = user.add_parser("add", help="add a user")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=[role.value for role in Role])
    p.add_argument("--team", action="append", default=[], help="a team the user acts for (repeat for several)")
    p.add_argument("--expires", metavar="DURATION", help="the user expires after this long (30d); guests must")
    p.add_argument("--guest-access", choices=sorted(GUEST_ACCESS), help="a guest's access: read-only or request-only")
    p.add_argument("--password-file", metavar="FILE", help="the dashboard password, its first line ('-': stdin)")
    p.set_defaults(func=user_add)
    p = user.add_parser("list", help="list users (never a password or hash)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=user_list)
    for action, func, text in (
        ("disable", user_disable, "refuse a user's tokens and logins, end its sessions"),
        ("enable", user_enable, "let a disabled user act again"),
    ):
        p = user.add_parser(action, help=text)
        p.add_argument("name")
        p.set_defaults(func=func)
    p = user.add_parser("passwd", help="set a user's dashboard password")
    p.add_argument("name")
    p.add_argument("--password-file", metavar="FILE", required=True, help="the password, its first line ('-': stdin)")
    p.set_defaults(func=user_passwd)

    token = sub.add_parser("token", help="API tokens of users").add_subparsers(dest="action", required=True)
    p = token.add_parser("create", help="create a token; printed once, alone on the last line")
    p.add_argument("name", help="the user the token acts as")
    p.add_argument("--expires", metavar="DURATION", help="the token expires after this long (30d)")
    p.add_argument(
        "--scope",
        action="append",
        default=[],
        help="a permission the token is limited to (certificates.read), or 'read' for every read; repeat for several",
    )
    p.add_argument("--label", default="cli", help="what the token is for (default cli)")
    p.set_defaults(func=token_create)
    p = token.add_parser("list", help="list tokens (never the token itself)")
    p.add_argument("name", nargs="?", help="only this user's tokens")
    p.set_defaults(func=token_list)
    p = token.add_parser("revoke", help="refuse a token from now on")
    p.add_argument("id", type=int)
    p.set_defaults(func=token_revoke)
    for parser in (*user.choices.values(), *token.choices.values()):
        add_config_option(parser)
        add_operator_option(parser)
