"""Discovery benchmark: TLS endpoints scanned per second on loopback, and certificate files scanned
per second, each as `tetra discover` runs it (a process recording into a demo CA's inventory) and
as the probe or the file walk alone (in this process, nothing recorded), so the cost of recording
shows.

    python bench/bench_discovery.py [--addresses 250] [--listeners 4] [--leaf-key ec-p256|rsa2048]
                                    [--concurrency 200] [--files 5000] [--parts endpoints,files]
                                    [--profile] [--output FILE]

Endpoints: `--listeners` TLS listener processes (discovery_listener.py: asyncio on uvloop, the ssl
module; TLS 1.2 and 1.3; leaf + intermediate, the leaf's key P-256 or RSA-2048), each bound to
0.0.0.0 on its own port, so that every address 127.0.1.1 .. 127.0.1.N reaches each of them:
N x listeners endpoints (1,000 by default). A probe makes about four connections per endpoint
(TLS 1.3, TLS 1.2, a refused TLS 1.1-or-older, a refused weak-suite ClientHello); the listeners
count connections and completed handshakes. Rows: `tetra discover scan ADDRESSES --ports ...`
as a child process (start to exit, and the scan's own seconds from its summary), then
scan_endpoints in this process on asyncio (as the CLI runs) and on uvloop. CPU seconds of the
scanner (the child, or this process) and of all listener processes, read around each row.
Last, the recording alone: the asyncio row's reports made into inventory records and written with
ScanStore.record in the CLI's batches (this process, the same demo CA: as a repeat scan).

Start-up: `tetra discover scans` on the same CA (nothing to scan) first, so that what every
`tetra discover` process pays before its first packet or file (imports, config, the CA) shows.

Files: a tree of `--files` files (discovery_setup.FILE_MIX: PEM, DER, PKCS#7, PKCS#12, JKS and
decoys), then `tetra discover files TREE` as a child process and scan_paths alone over the whole
tree and over each kind's folder, and the whole tree's reports recorded alone as above. files/s
counts every file in the tree (decoys included: the walk opens and sniffs them too); the
recording row counts the files reported (certificates, or a reason they were not read).

Exit status 1 when a scan missed something: an endpoint without a complete handshake, a file
not reported as its kind should be, or a child process that failed.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_acme import cpu_seconds  # noqa: E402
from bench_core import git_state  # noqa: E402
from discovery_measure import (  # noqa: E402
    Row,
    endpoint_results,
    file_results,
    file_rows_alone,
    probe_alone,
    record_alone,
    table,
)
from discovery_setup import PASSPHRASE, Listeners, make_pki, make_tree, start_listeners  # noqa: E402
from loadgen import write_record  # noqa: E402

from server.discovery.file_scan import FileReport  # noqa: E402
from server.discovery.tls_probe import EndpointReport  # noqa: E402
from tests.tetra_process import tetra_command  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
ADDRESS_PREFIX = "127.0.1."


def init_ca(work: Path, concurrency: int, timeout: float) -> Path:
    """A demo CA (`tetra init`) whose [discovery] section allows this scan; its config file."""
    directory = work / "ca"
    subprocess.run(
        [*tetra_command(), "init", "--dir", str(directory), "--http", "127.0.0.1:0", "--https", "127.0.0.1:0"],
        check=True,
        capture_output=True,
    )
    config = directory / "tetra.toml"
    with config.open("a") as handle:
        handle.write(f"\n[discovery]\nconcurrency = {concurrency}\ntimeout_seconds = {timeout:g}\n")
    return config


def run_cli(arguments: list[str], output: Path) -> tuple[float, tuple[float, float], dict[str, object]]:
    """A `tetra` command as a child process: wall seconds, its (CPU, system CPU) seconds, and its
    JSON output (a scan's summary, without the per-location results)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with output.open("w") as out:
        result = subprocess.run([*tetra_command(), *arguments], stdout=out, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"tetra {' '.join(arguments[:2])} failed: {result.stderr.strip()[-2000:]}")
    system = after.ru_stime - before.ru_stime
    cpu = (after.ru_utime - before.ru_utime) + system
    answer = json.loads(output.read_text())
    summary = answer if isinstance(answer, dict) else {"items": len(answer)}
    summary.pop("results", None)
    return wall, (cpu, system), summary


def startup_row(config: Path, work: Path) -> Row:
    """`tetra discover scans` on the same CA: what any `tetra discover` process costs before it scans
    (interpreter, imports, config, opening the CA)."""
    wall, (cpu, system), _ = run_cli(
        ["discover", "scans", "--config", str(config), "--format", "json"], work / "n.json"
    )
    row = Row("`tetra discover scans` (start-up cost: nothing to scan)", 0, wall, cpu, system)
    print(table([row]).splitlines()[-1], flush=True)
    return row


def endpoint_rows(args: argparse.Namespace, listeners: Listeners, config: Path, work: Path) -> list[Row]:
    addresses = [f"{ADDRESS_PREFIX}{n}" for n in range(1, args.addresses + 1)]
    endpoints = len(addresses) * len(listeners.ports)
    ports = ",".join(map(str, listeners.ports))

    def measured(what: str, run: Callable[[], tuple[float, tuple[float, float], int, str]]) -> Row:
        servers_before = sum(cpu_seconds(pid) for pid in listeners.pids)
        accepted_before, handshakes_before = listeners.counts()
        seconds, (cpu, system), failures, note = run()
        accepted, handshakes = listeners.counts()
        row = Row(
            what,
            endpoints,
            seconds,
            cpu,
            system,
            servers_cpu=sum(cpu_seconds(pid) for pid in listeners.pids) - servers_before,
            connections=accepted - accepted_before,
            handshakes=handshakes - handshakes_before,
            failures=failures,
            note=note,
        )
        print(table([row]).splitlines()[-1], flush=True)
        return row

    def cli() -> tuple[float, tuple[float, float], int, str]:
        command = ["discover", "scan", *addresses, "--ports", ports, "--config", str(config), "--format", "json"]
        wall, cpu, summary = run_cli(command, work / "scan.json")
        scan_seconds = float(summary["seconds"])  # type: ignore[arg-type]
        note = f"the scan itself: {scan_seconds:.2f} s, {endpoints / scan_seconds:,.0f} endpoints/s (its summary)"
        return wall, cpu, endpoints - int(summary["answered"]), note  # type: ignore[call-overload]

    reports: list[EndpointReport] = []

    def alone(loop: str) -> Callable[[], tuple[float, tuple[float, float], int, str]]:
        keep = reports if loop == "asyncio" else None
        return lambda: probe_alone(addresses, listeners.ports, args.concurrency, args.timeout, loop, keep)

    rows = [measured("`tetra discover scan` (process, start to exit)", cli)]
    rows += [measured(f"scan_endpoints alone, {loop}", alone(loop)) for loop in ("asyncio", "uvloop")]
    rows.append(record_alone(config, "network", endpoint_results(reports)))
    return rows


def file_rows(args: argparse.Namespace, config: Path, work: Path) -> tuple[list[Row], dict[str, int]]:
    tree = work / "files"
    started = time.perf_counter()
    counts = make_tree(tree, args.files, make_pki(), work)
    print(f"{args.files} files made in {time.perf_counter() - started:.1f} s: {counts}", flush=True)
    phrases = work / "passphrases.txt"
    phrases.write_bytes(PASSPHRASE + b"\n")
    command = ["discover", "files", str(tree), "--passphrase-file", str(phrases), "--config", str(config)]
    wall, (cpu, system), summary = run_cli([*command, "--format", "json"], work / "files.json")
    expected_read = sum(n for kind, n in counts.items() if not kind.startswith("decoy"))
    missed = expected_read - int(summary["answered"])  # type: ignore[call-overload]
    scan_seconds = float(summary["seconds"])  # type: ignore[arg-type]
    note = f"the scan itself: {scan_seconds:.2f} s, {args.files / scan_seconds:,.0f} files/s (its summary)"
    what = "`tetra discover files` (process, start to exit)"
    rows = [Row(what, args.files, wall, cpu, system, failures=missed, note=note)]
    print(table(rows).splitlines()[-1], flush=True)
    reports: list[FileReport] = []
    rows += file_rows_alone(tree, counts, reports)
    rows.append(record_alone(config, "files", file_results(reports)))
    return rows, counts


def profiles(args: argparse.Namespace, listeners: Listeners | None, work: Path) -> str:
    """cProfile of the probe alone and of the file walk alone (slower than the timed runs): top costs."""
    sections = []
    if listeners is not None:
        addresses = [f"{ADDRESS_PREFIX}{n}" for n in range(1, args.addresses + 1)]
        profile = cProfile.Profile()
        profile.enable()
        probe_alone(addresses, listeners.ports, args.concurrency, args.timeout, "asyncio")
        profile.disable()
        sections.append(("scan_endpoints alone, asyncio", profile))
    if (work / "files").is_dir():
        profile = cProfile.Profile()
        profile.enable()
        file_rows_alone(work / "files", None)
        profile.disable()
        sections.append(("scan_paths alone", profile))
    text = []
    for title, profile in sections:
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats(order).print_stats(25)
            text.append(f"## {title}, by {order}\n\n```\n{out.getvalue().strip()}\n```\n")
    return "\n".join(text)


def environment(args: argparse.Namespace, load: str, counts: dict[str, int] | None) -> str:
    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    models = [
        line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line
    ]
    cpu = models[0] if models else platform.processor() or "unknown CPU"
    lines = [
        f"- code: {git_state()}",
        f"- machine: {cpu}, {os.cpu_count()} CPUs; Python {platform.python_version()}, {openssl}; "
        f"load average before the run: {load}; scanner and listeners share the CPUs",
        f"- endpoints: {ADDRESS_PREFIX}1-{args.addresses} x {args.listeners} listener processes = "
        f"{args.addresses * args.listeners}; leaf key {args.leaf_key} + P-256 intermediate; "
        f"concurrency {args.concurrency}, timeout {args.timeout:g} s per endpoint",
    ]
    if counts:
        mix = ", ".join(f"{kind} {n}" for kind, n in counts.items())
        lines.append(f"- files: {sum(counts.values())} ({mix}); PKCS#12 with 2,048 PBKDF2 rounds, one passphrase given")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    parts = set(args.parts.split(","))
    load = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="tetra-bench-discovery-"))
    print(f"work directory: {work}", flush=True)
    rows: list[Row] = []
    counts: dict[str, int] | None = None
    listeners: Listeners | None = None
    profile_text = ""
    try:
        config = init_ca(work, args.concurrency, args.timeout)
        rows.append(startup_row(config, work))
        if "endpoints" in parts:
            listeners = start_listeners(args.listeners, make_pki(), args.leaf_key, work)
            rows += endpoint_rows(args, listeners, config, work)
        if "files" in parts and args.files > 0:
            file_part, counts = file_rows(args, config, work)
            rows += file_part
        if args.profile:
            profile_text = profiles(args, listeners, work)
    finally:
        if listeners is not None:
            listeners.stop()
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    load += " (after: {:.2f} {:.2f} {:.2f})".format(*os.getloadavg())
    md = f"# Discovery benchmark\n\n`python bench/bench_discovery.py`\n\n{environment(args, load, counts)}\n\n"
    md += f"{table(rows)}\n"
    if profile_text:
        md += f"\n# Profiles (cProfile; slower than the timed rows)\n\n{profile_text}"
    write_record(args, md, rows, load)
    failed = [r for r in rows if r.failures]
    for row in failed:
        print(f"FAILED: {row.what}: {row.failures} missed", file=sys.stderr)
    return 1 if failed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--addresses", type=int, default=250, help="loopback addresses 127.0.1.1 .. 127.0.1.N (N <= 254)")
    p.add_argument("--listeners", type=int, default=4, help="TLS listener processes, a port each")
    p.add_argument("--leaf-key", choices=["ec-p256", "rsa2048"], default="ec-p256", help="the listeners' leaf key")
    p.add_argument("--concurrency", type=int, default=200, help="endpoints probed at once ([discovery] concurrency)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per endpoint, all its handshakes")
    p.add_argument("--files", type=int, default=5000, help="files in the tree (0: no file rows)")
    p.add_argument("--parts", default="endpoints,files", help="endpoints, files")
    p.add_argument("--profile", action="store_true", help="add cProfile top costs of the in-process rows")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--output", type=Path, default=RESULTS / "discovery.md", help="markdown; the JSON record beside it")
    args = p.parse_args(argv)
    if not 1 <= args.addresses <= 254:
        p.error("--addresses must be 1 to 254")
    if args.listeners < 1 or args.concurrency < 1 or args.files < 0:
        p.error("--listeners and --concurrency must be at least 1, --files at least 0")
    if not set(args.parts.split(",")) <= {"endpoints", "files"}:
        p.error("--parts: endpoints, files")
    return args


if __name__ == "__main__":
    sys.exit(main(parse_args()))
