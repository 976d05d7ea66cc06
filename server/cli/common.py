"""What every `tetra` command shares: the --config option (before or after the subcommand),
the --operator option, the one-line operator error, and opening the CA as the server does.

Commands import the heavy parts (the store, signers, cryptography) inside their bodies, so that
`tetra --help` and a mistyped option answer at once.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ca.service import CertificateAuthority
    from server.config import ServerConfig

    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]  # what add_subparsers returns

DEFAULT_CONFIG = os.environ.get("TETRA_CONFIG", "var/tetra.toml")
CONFIG_HELP = (
    f"config file (default {DEFAULT_CONFIG}, from $TETRA_CONFIG or else var/tetra.toml); accepted before "
    "or after the subcommand, and when given in both places the one after the subcommand wins"
)

Command = Callable[[argparse.Namespace], int]
CaWork = Callable[[argparse.Namespace, "CertificateAuthority", "ServerConfig"], Awaitable[int]]


class CLIError(Exception):
    """A one-line message for the operator."""


def read_config(path: str) -> ServerConfig:
    from server.wiring import read_config as load

    return load(Path(path))


# -- --config -----------------------------------------------------------------------------
# Both the top-level parser and each command that reads a config accept --config, neither with
# a default (SUPPRESS), so the namespace holds whichever was given. argparse copies the
# subcommand's values over the top-level ones, so the one after the subcommand wins; main()
# then fills in the default (resolve_config).
def add_global_config_option(parser: argparse.ArgumentParser) -> None:
    """`tetra --config FILE <command>`, like `git -C DIR <command>`."""
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=CONFIG_HELP)


def add_config_option(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`tetra <command> --config FILE`, and mark the command as one that reads a config."""
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=CONFIG_HELP)
    parser.set_defaults(reads_config=True)
    return parser


def resolve_config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Set ``args.config`` for a command that reads one; refuse --config for one that does not
    (`tetra --config prod.toml init ...` would otherwise silently ignore it)."""
    if getattr(args, "reads_config", False):
        args.config = getattr(args, "config", DEFAULT_CONFIG)
    elif hasattr(args, "config"):
        parser.error("--config: this command reads no config file")


def config_relative(config_dir: Path, path: str | Path | None) -> str:
    """``path`` as a config (or the CA registry) keeps it: relative to the config file's directory,
    so a CA directory can be moved or copied (to another machine, into a container) as a whole.
    An empty path stays empty."""
    return os.path.relpath(Path(path).resolve(), config_dir.resolve()) if path else ""


def parse_time(option: str, text: str) -> dt.datetime | None:
    """An option's moment: None for 'now' (the caller takes its clock's), else an ISO 8601 time
    with its zone. A time without one is refused rather than guessed: CA activation times are
    read by servers in other zones."""
    if text == "now":
        return None
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise CLIError(f"{option} {text!r}: not an ISO 8601 time (2027-01-31T12:00:00Z) or 'now'") from None
    if at.tzinfo is None:
        raise CLIError(f"{option} {text!r}: say the time zone (Z or +01:00)")
    return at.astimezone(dt.UTC)


def add_operator_option(parser: argparse.ArgumentParser) -> None:
    """Who acts: recorded in the audit log as cli:<operator>."""
    parser.add_argument(
        "--operator", default=os.environ.get("USER", "operator"), help="who acts, for the audit log (default $USER)"
    )


# -- opening the CA -------------------------------------------------------------------------
def on_ca(work: CaWork) -> Command:
    """Turn ``work(args, ca, config)`` into a command: the CA its config describes is built as
    the server builds it, checked and prepared, handed to ``work`` and closed afterwards."""

    @functools.wraps(work)
    def command(args: argparse.Namespace) -> int:
        return asyncio.run(_run_on_ca(args, work))

    return command


def on_ca_reading(work: CaWork) -> Command:
    """`on_ca` for a command that only reads the store: no signer is opened, so listing
    certificates never asks for an HSM PIN or a key passphrase."""

    @functools.wraps(work)
    def command(args: argparse.Namespace) -> int:
        return asyncio.run(_run_on_ca(args, work, open_signers=False))

    return command


async def _run_on_ca(args: argparse.Namespace, work: CaWork, *, open_signers: bool = True) -> int:
    from ca.activity import new_request_id, request_scope
    from ca.revocation.pointers import install_pointers
    from ca.store.migrate import require_current
    from server.logs import command_log_format
    from server.wiring import build_ca, crl_settings

    config = read_config(args.config)
    command_log_format(config.log_format)
    ca = await build_ca(config, open_signers=open_signers)
    try:
        await require_current(ca.db)
        # What a certificate issued here points at (CRL partition, delta CRL) must match what
        # the server would have put there.
        await install_pointers(ca, crl_settings(config))
        with request_scope(new_request_id("cli-"), protocol="cli"):  # the events it logs (ca/activity.py)
            return await work(args, ca, config)
    finally:
        await ca.close()
