"""The `tetra` command. Errors are one line on stderr and a non-zero exit, never a traceback.

Each group of commands is a module with an ``add_commands`` (deployment: init, serve, db;
hierarchy: ca; certificates: requests, issue, revoke, audit; inventory (certs); discover; notify;
report; revocation: crl, ocsp; operators: user, token);
protocol_commands mounts what each protocol lists in its ProtocolSpec (`tetra acme ...`).
common holds what they share: --config, --operator, opening the CA.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata

from ca.errors import CAError, ConfigError
from server.cli import (
    certificates,
    deployment,
    discover,
    hierarchy,
    inventory,
    notify,
    operators,
    protocol_commands,
    report,
    revocation,
)
from server.cli.common import CLIError, add_global_config_option, resolve_config
from server.logs import setup_command_logging


def _version() -> str:
    """The installed distribution's version (pyproject.toml), or a plain word when run from a
    source tree that was never installed."""
    try:
        return metadata.version("tetra-ca")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tetra", description="Tetra CA: ACME, EST, SCEP, CMP, OCSP and CRL")
    parser.add_argument("--version", action="version", version=f"tetra {_version()}")
    add_global_config_option(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    groups = (
        deployment,
        hierarchy,
        certificates,
        inventory,
        discover,
        notify,
        report,
        operators,
        protocol_commands,
        revocation,
    )
    for group in groups:
        group.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    resolve_config(parser, args)
    if args.func is not deployment.serve:
        # One-shot commands report through their own one-line errors; keep library chatter out,
        # but log the activity events they decide (server/logs.py).
        setup_command_logging()
    try:
        return int(args.func(args))
    except (CLIError, ConfigError) as exc:
        print(f"tetra: error: {exc}", file=sys.stderr)
        return 2
    except CAError as exc:
        print(f"tetra: error: {exc.detail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `tetra ... | head`: the reader has had enough; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


__all__ = ["CLIError", "build_parser", "main"]
