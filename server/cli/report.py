"""`tetra report expiring|weak|inventory|issued`: the inventory's reports as CSV, JSON or HTML.

Options are checked before the CA is opened, each with a one-line error. The whole report is
rendered before anything is written, and a file given with --out is written beside its target
and then renamed into place, so a failed run never leaves half a report behind.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from server.cli.common import CLIError, add_config_option, on_ca_reading

if TYPE_CHECKING:
    from ca.service import CertificateAuthority
    from server.cli.common import Subcommands
    from server.config import ServerConfig
    from server.reports.model import Report

FORMATS = ("csv", "json", "html")
MAX_DAYS = 3650
MAX_WEEKS = 520


def report(args: argparse.Namespace) -> int:
    if args.format not in FORMATS:
        raise CLIError(f"--format {args.format!r}: choose one of {', '.join(FORMATS)}")
    if args.kind == "expiring":
        args.days = _whole_number("--days", args.days, 0, MAX_DAYS)
    if args.kind == "issued":
        args.weeks = _whole_number("--weeks", args.weeks, 1, MAX_WEEKS)
    if args.out and not Path(args.out).parent.is_dir():
        raise CLIError(f"--out {args.out}: no such directory {str(Path(args.out).parent)!r}")
    return _report_on_ca(args)


@on_ca_reading
async def _report_on_ca(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    text = _render(args.format, await _gather(args, ca))
    if args.out:
        _write_whole(Path(args.out), text)
        print(f"report {args.kind} -> {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


async def _gather(args: argparse.Namespace, ca: CertificateAuthority) -> Report:
    from server.reports.data import expiring_report, inventory_report, weak_report
    from server.reports.issued import issued_report

    now = ca.clock.now()
    if args.kind == "expiring":
        return await expiring_report(ca, days=args.days, now=now)
    if args.kind == "weak":
        return await weak_report(ca, now=now)
    if args.kind == "inventory":
        return await inventory_report(ca, now=now)
    return await issued_report(ca, weeks=args.weeks, now=now)


def _render(output_format: str, report: Report) -> str:
    if output_format == "json":
        from server.reports.render_json import render_json

        return render_json(report)
    if output_format == "html":
        from server.reports.render_html import render_html

        return render_html(report)
    from server.reports.render_csv import render_csv

    return render_csv(report)


def _whole_number(option: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise CLIError(f"{option} {text!r}: not a whole number") from None
    if not low <= value <= high:
        raise CLIError(f"{option} {value}: must be from {low} to {high}")
    return value


def _write_whole(path: Path, text: str) -> None:
    """``text`` into ``path`` whole or not at all (a temporary file beside it, then renamed),
    created with the usual permissions (the umask's, as a shell redirection would)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise CLIError(f"--out {path}: {exc.strerror}") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def add_commands(sub: Subcommands) -> None:
    parser = sub.add_parser("report", help="reports on the certificate inventory: CSV, JSON or HTML")
    kinds = parser.add_subparsers(dest="kind", required=True)
    helps = {
        "expiring": "certificates ending within --days days (expired ones included)",
        "weak": "weak keys and signatures, revoked but deployed, never deployed, endpoint findings",
        "inventory": "every unexpired certificate and where it is deployed (PCI DSS 4.0, 4.2.1.1)",
        "issued": "what Tetra issued per week, issuer and protocol, and renewals on time or late",
    }
    for kind, text in helps.items():
        p = add_config_option(kinds.add_parser(kind, help=text, description=text))
        if kind == "expiring":
            p.add_argument("--days", default="30", metavar="N", help="within N days (default 30)")
        if kind == "issued":
            p.add_argument(
                "--weeks", default="12", metavar="N", help="the last N weeks, this one included (default 12)"
            )
        p.add_argument("--format", default="csv", metavar="csv|json|html", help="output format (default csv)")
        p.add_argument("--out", default="", metavar="FILE", help="write to FILE instead of standard output")
        p.set_defaults(func=report)
