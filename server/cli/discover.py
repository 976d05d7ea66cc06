"""`tetra discover`: find certificates on the network and on disk, and what is wrong where.

`scan` probes hosts, addresses and CIDR ranges (refused before any packet above the configured
cap or outside the allow-list), `files` reads certificate files under paths; both record what
they find in the inventory (`tetra inventory list --source discovered`, `--seen-at`) and print a
summary. `findings` lists each location's current problems, `scans` the scans run so far.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from server.cli.common import CLIError, add_config_option, add_operator_option, on_ca_reading
from server.cli.inventory_view import WHEN, columns

if TYPE_CHECKING:
    from ca.inventory.scans import LocationResult, ScanRecord
    from ca.service import CertificateAuthority
    from server.cli.common import Subcommands
    from server.config import ServerConfig
    from server.discovery.run import ScanSummary


@contextmanager
def _progress(total: int | None, what: str) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on a terminal (stderr), nothing when stderr is a file or a pipe."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.advance(task, n)


@on_ca_reading
async def discover_scan(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    from dataclasses import replace

    from server.discovery.run import plan_network_scan, scan_network
    from server.discovery.targets import TargetError, parse_ports

    settings = config.discovery
    if args.timeout is not None:
        if not args.timeout > 0:
            raise CLIError("--timeout must be a positive number of seconds")
        settings = replace(settings, timeout_seconds=args.timeout)
    if args.concurrency is not None:
        if args.concurrency < 1:
            raise CLIError("--concurrency must be at least 1")
        settings = replace(settings, concurrency=args.concurrency)
    try:
        ports = parse_ports(args.ports) if args.ports else list(settings.ports)
        endpoints = await plan_network_scan(settings, args.targets, ports)
    except TargetError as exc:
        raise CLIError(f"scan refused, nothing sent: {exc}") from None
    with _progress(len(endpoints), "scanning") as progress:
        summary = await scan_network(
            ca, settings, endpoints, targets=args.targets, actor=f"cli:{args.operator}", progress=progress
        )
    _report(summary, args.format)
    return 0


@on_ca_reading
async def discover_files(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    from server.discovery.run import scan_files

    passphrases: list[bytes] = []
    if args.passphrase_file:
        try:
            passphrases = [line for line in Path(args.passphrase_file).read_bytes().splitlines() if line]
        except OSError as exc:
            raise CLIError(f"{args.passphrase_file}: {exc.strerror}") from None
    for path in args.paths:
        if not Path(path).exists() and not Path(path).is_symlink():
            raise CLIError(f"{path}: no such file or directory")
    with _progress(None, "reading files") as progress:
        summary = await scan_files(
            ca,
            config.discovery,
            [Path(p) for p in args.paths],
            actor=f"cli:{args.operator}",
            passphrases=passphrases,
            progress=progress,
        )
    _report(summary, args.format)
    return 0


def _report(summary: ScanSummary, form: str) -> None:
    if form == "json":
        print(json.dumps(summary.as_dict() | {"results": [_result_dict(r) for r in summary.results]}, indent=2))
        return
    shown = [r for r in summary.results if r.certificates or (r.findings and r.kind == "file")]
    rows = [_result_row(r) for r in shown]
    if rows:
        for line in columns(["location", "protocols", "certificate", "not after", "findings"], rows):
            print(line)
    silent = summary.locations - len(shown)
    reasons: dict[str, int] = {}
    for r in summary.results:
        if not r.certificates and r.error:
            key = r.error.split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1
    rate = summary.locations / summary.seconds if summary.seconds else 0.0
    found = ", ".join(f"{n} {severity}" for severity, n in sorted(summary.findings.items())) or "none"
    print(
        f"scan {summary.scan_id}: {summary.locations} {'endpoints' if summary.kind == 'network' else 'files'} "
        f"in {summary.seconds:.1f} s ({rate:.0f}/s); {summary.answered} answered, "
        f"{summary.certificates} distinct certificates, findings: {found}",
        file=sys.stderr,
    )
    if silent and reasons:
        print(
            "  without a certificate: " + ", ".join(f"{n} {why}" for why, n in sorted(reasons.items())), file=sys.stderr
        )


def _result_row(r: LocationResult) -> list[str]:
    leaf = r.certificates[0] if r.certificates else None
    subject = leaf.subject.rfc4514_string() if leaf else "-"
    return [
        r.location,
        ",".join(r.protocols) or "-",
        subject[:60],
        f"{leaf.not_valid_after_utc:{WHEN}}" if leaf else "-",
        ",".join(sorted({f.code for f in r.findings})) or "-",
    ]


def _result_dict(r: LocationResult) -> dict[str, object]:
    from cryptography.hazmat.primitives import hashes

    return {
        "kind": r.kind,
        "location": r.location,
        "protocols": list(r.protocols),
        "certificates": [
            {
                "subject": c.subject.rfc4514_string(),
                "fingerprint": c.fingerprint(hashes.SHA256()).hex(),
                "not_after": c.not_valid_after_utc.isoformat(),
            }
            for c in r.certificates
        ],
        "findings": [{"code": f.code, "severity": f.severity, "detail": f.detail} for f in r.findings],
        "error": r.error,
    }


@on_ca_reading
async def discover_findings(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    found = await ca.scans.current_findings(location_prefix=args.location, codes=args.code or ())
    if args.format == "json":
        items = [
            {
                "location": f.location,
                "kind": f.kind,
                "code": f.code,
                "severity": f.severity,
                "detail": f.detail,
                "inventory_id": f.inventory_id,
                "at": f.at.isoformat(),
            }
            for f in found
        ]
        print(json.dumps(items, indent=2))
        return 0
    if not found:
        print("no findings", file=sys.stderr)
        return 0
    rows = [[f.location, f.severity, f.code, f"{f.at:{WHEN}}", f.detail] for f in found]
    for line in columns(["location", "severity", "code", "seen", "detail"], rows):
        print(line)
    return 0


@on_ca_reading
async def discover_scans(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    scans = await ca.scans.recent(args.limit)
    if args.format == "json":
        print(json.dumps([_scan_dict(s) for s in scans], indent=2))
        return 0
    rows = [
        [str(s.id), s.kind, s.status, f"{s.started_at:{WHEN}}", s.requested_by, " ".join(s.targets)[:60]] for s in scans
    ]
    for line in columns(["id", "kind", "status", "started", "by", "targets"], rows):
        print(line)
    return 0


def _scan_dict(s: ScanRecord) -> dict[str, object]:
    finished = s.finished_at.isoformat() if s.finished_at else None
    return {
        "id": s.id,
        "kind": s.kind,
        "status": s.status,
        "targets": list(s.targets),
        "requested_by": s.requested_by,
        "started_at": s.started_at.isoformat(),
        "finished_at": finished,
        "summary": s.summary,
    }


def add_commands(sub: Subcommands) -> None:
    discover = sub.add_parser("discover", help="find certificates on the network and on disk").add_subparsers(
        dest="action", required=True
    )
    p = add_config_option(discover.add_parser("scan", help="probe TLS endpoints: hosts, addresses, CIDR ranges"))
    p.add_argument("targets", nargs="+", metavar="TARGET", help="host, address, CIDR range, or host:port")
    p.add_argument("--ports", help="e.g. 443,8443,25,993 or 8000-8010 (default: [discovery] ports)")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="per endpoint, all its handshakes")
    p.add_argument("--concurrency", type=int, metavar="N", help="endpoints probed at once")
    p.add_argument("--format", choices=["table", "json"], default="table")
    add_operator_option(p)
    p.set_defaults(func=discover_scan)

    p = add_config_option(discover.add_parser("files", help="read certificate files under paths"))
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--passphrase-file", metavar="FILE", help="passphrases to try on PKCS#12 and keystores, one a line")
    p.add_argument("--format", choices=["table", "json"], default="table")
    add_operator_option(p)
    p.set_defaults(func=discover_files)

    p = add_config_option(discover.add_parser("findings", help="each location's problems, as its last scan saw them"))
    p.add_argument("--location", metavar="PREFIX", help="locations starting with this")
    p.add_argument("--code", action="append", help="only this finding code (repeatable)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=discover_findings)

    p = add_config_option(discover.add_parser("scans", help="the scans run so far, newest first"))
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=discover_scans)
