"""EST benchmark: simpleenroll per second over HTTPS with keep-alive, from Tetra's `tetra serve`
and from libest's example `estserver` (OpenSSL in C), with the core's own issuance rate (no
HTTP) measured in the same run.

    python bench/bench_est.py [--seconds 5] [--warmup 1] [--concurrency 1,8,32]
                              [--auth cert,basic] [--servers tetra,libest] [--database sqlite]
                              [--db-mode thread] [--requests 2000] [--output FILE]

Requests: `--requests` distinct P-256 keys and CSRs with one DNS name each (core_setup.
make_requests, the core benchmark's own), built before any timing; the core row issues those
EnrollmentRequests, the EST rows post the same CSRs (base64 DER) to /.well-known/est/simpleenroll.
Authentication: `cert` is a TLS client certificate each server issued over EST beforehand (no
Authorization header); `basic` is HTTP Basic with a user of that server.

Load: one generator process (est_loadgen.py: asyncio + uvloop, loadgen.run_asyncio over TLS),
`concurrency` keep-alive connections, a warm-up, then the measured window. It reads the
server's CPU time (utime + stime, /proc/PID/stat, children included) as the window opens and
closes. The core rows drive `CertificateAuthority.enroll` in this process (bench_core.run_row)
with the same database kind and mode as the server, and read this process's CPU time.

Tetra: the demo CA that bench_core uses (software P-256 issuer), profile bench-tls (tls-server
without the pkilint gate; the core rows use it too), a fresh database for every row, one
`tetra serve` process. estserver: see est_setup.py (its own P-256 CA, same extensions).

Reported per row: certificates/s, server CPU seconds in the window, certificates per server
CPU-second, p50/p99 latency, errors, and how many of the connections got an answer in the
window (estserver serves 5 at a time). Then: Tetra's certificates per CPU-second as a ratio
to estserver's, and the HTTPS + EST cost at concurrency 32 as a share of the core's rate
(the issue's aim: under 30%). Exit status 1 when a Tetra or core row had an error, or a
server's sample answers did not carry the CSR's key.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import core_setup  # noqa: E402
from bench_core import DB_LABEL, Row, git_state, run_row  # noqa: E402
from core_setup import BENCH_PROFILE  # noqa: E402
from est_setup import CLIENT_NAME, LibestServer, TetraServer, clients_dir, simpleenroll_request  # noqa: E402
from loadgen import write_requests  # noqa: E402

from ca.enrollment import EnrollmentRequest  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CORE = "Tetra core (no HTTP)"


@dataclass
class Result:
    server: str
    auth: str
    concurrency: int
    certificates: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    answered: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.certificates / self.seconds if self.seconds else 0.0

    @property
    def per_cpu(self) -> float:
        return self.certificates / self.cpu if self.cpu else 0.0


def load(
    server: TetraServer | LibestServer,
    requests: list[EnrollmentRequest],
    auth: str,
    concurrency: int,
    args: argparse.Namespace,
    work: Path,
) -> Result:
    """One row: the generator process against a started server."""
    assert server.proc is not None and server.identity is not None
    basic = server.basic if auth == "basic" else None
    raw = [simpleenroll_request(server.enroll_path, r.raw_request, basic) for r in requests]
    requests_file = work / "requests"
    write_requests(requests_file, raw)
    job = {
        "host": "127.0.0.1",
        "port": server.port,
        "pid": server.proc.pid,
        "cafile": str(server.cafile),
        "requests": str(requests_file),
        "concurrency": concurrency,
        "warmup": args.warmup,
        "seconds": args.seconds,
        **({"cert": str(server.identity[0]), "key": str(server.identity[1])} if auth == "cert" else {}),
    }
    (work / "job.json").write_text(json.dumps(job))
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve().parent / "est_loadgen.py"), str(work / "job.json")],
        capture_output=True,
        text=True,
        timeout=args.warmup + args.seconds + 300,
    )
    if done.returncode != 0:
        raise SystemExit(f"est_loadgen.py failed: {done.stderr[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    result = Result(server.label, auth, concurrency)
    result.errors = int(out["errors"])
    result.certificates = int(out["requests"]) - result.errors  # answers with status 200
    result.seconds = float(out["seconds"])
    result.cpu = float(out["cpu_seconds"])
    result.p50_ms = float(out["quantiles"].get("0.5", 0)) * 1e3
    result.p99_ms = float(out["quantiles"].get("0.99", 0)) * 1e3
    result.answered = int(out["connections_answered"])
    if out["first_error"]:
        result.notes.append(f"first error: {out['first_error']}")
    if out["sample_errors"]:
        result.errors += int(out["sample_errors"])
        result.notes.append(
            f"{out['sample_errors']} of {out['sample_checked']} sample answers wrong: {out['sample_first_error']}"
        )
    return result


async def core_row(
    ca_dir: Path, work: Path, requests: list[EnrollmentRequest], concurrency: int, args: argparse.Namespace
) -> Result:
    """bench_core's row (fresh database, enroll from `concurrency` tasks, store checked after), with
    this process's CPU time read as its measured window opens and closes."""
    cpu: list[float] = []
    hooks = (lambda: cpu.append(time.process_time()), lambda: cpu.append(time.process_time()))
    row = Row("sw-p256", args.database, args.db_mode, concurrency, False)
    notes: dict[str, str] = {}
    await run_row(row, ca_dir, work, requests, args.warmup, args.seconds, notes, hooks)
    result = Result(CORE, "-", concurrency, certificates=row.window_count, seconds=args.seconds)
    result.cpu = cpu[1] - cpu[0] if len(cpu) == 2 else 0.0
    result.p50_ms, result.p99_ms = row.p50_ms, row.p99_ms
    result.errors = sum(row.errors.values()) + len(row.problems)
    result.answered = concurrency
    result.notes += [f"{n} x {text}" for text, n in row.errors.most_common(3)] + row.problems
    return result


def table(results: list[Result]) -> str:
    lines = [
        "| server | auth | concurrency | certs/s | server CPU s | certs/CPU-s | p50 ms | p99 ms | errors "
        "| connections answered |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.server} | {r.auth} | {r.concurrency} | {r.rate:,.0f} | {r.cpu:.2f} | {r.per_cpu:,.0f} "
            f"| {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.errors} | {r.answered} of {r.concurrency} |"
        )
    return "\n".join(lines)


def find(results: list[Result], server: str, auth: str, concurrency: int) -> Result | None:
    return next((r for r in results if (r.server, r.auth, r.concurrency) == (server, auth, concurrency)), None)


def summary(results: list[Result], concurrencies: list[int], auths: list[str]) -> str:
    lines = []
    for auth in auths:
        for c in concurrencies:
            tetra, libest = find(results, TetraServer.label, auth, c), find(results, LibestServer.label, auth, c)
            if tetra and libest and libest.per_cpu:
                lines.append(
                    f"- {auth}, concurrency {c}: Tetra {tetra.per_cpu:,.0f} certificates per server CPU-second, "
                    f"estserver {libest.per_cpu:,.0f}: ratio {tetra.per_cpu / libest.per_cpu:.2f}"
                )
    top = max(concurrencies)
    core = find(results, CORE, "-", top)
    for auth in auths:
        tetra = find(results, TetraServer.label, auth, top)
        if core and tetra and core.rate and core.per_cpu:
            cost = 1 - tetra.rate / core.rate
            cpu_cost = 1 - tetra.per_cpu / core.per_cpu
            lines.append(
                f"- HTTPS + EST cost at concurrency {top} ({auth}): Tetra over EST {tetra.rate:,.0f}/s vs the core "
                f"{core.rate:,.0f}/s = {100 * cost:.0f}% of the core's rate "
                f"({'within' if cost < 0.30 else 'ABOVE'} the 30% aim); per CPU-second {tetra.per_cpu:,.0f} vs "
                f"{core.per_cpu:,.0f} = {100 * cpu_cost:.0f}% (the same comparison, steadier on a shared machine); "
                f"errors {tetra.errors}"
            )
    return "\n".join(lines)


def environment(args: argparse.Namespace) -> str:
    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    return "\n".join(
        [
            f"- code: {git_state()}",
            f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {args.warmup:g} s warm-up, "
            f"then {args.seconds:g} s measured per row",
            f"- machine: {platform.node()}, {os.cpu_count()} CPUs; Python {platform.python_version()}, {openssl}; "
            "server, load generator (one process, asyncio over TLS) and, for PostgreSQL, the database share them",
            f"- Tetra: one `tetra serve`, EST only, {DB_LABEL[args.database]} ({args.db_mode}), fresh per row; "
            f"profile {BENCH_PROFILE} (tls-server, pkilint gate off); software P-256 issuer",
            "- estserver: libest's example server, its own OpenSSL P-256 CA with the same extensions, "
            "`-b -o` (Basic, or a client certificate instead); 5 worker threads, a keep-alive connection "
            "holds one until closed (`connections answered`)",
            f"- {args.requests} distinct P-256 CSRs, cycled: one DNS name each for Basic, the client "
            "certificate's own name (each with a new key) for client-certificate rows; TLS as each server "
            "negotiates it",
        ]
    )


async def main(args: argparse.Namespace) -> int:
    concurrencies = [int(c) for c in args.concurrency.split(",") if c]
    auths = [a for a in args.auth.split(",") if a]
    servers = [s for s in args.servers.split(",") if s]
    estserver = clients_dir() / "bin" / "estserver"
    if "libest" in servers and not estserver.exists():
        raise SystemExit(f"{estserver} is missing: run `make clients` (or set TETRA_CLIENTS_DIR)")
    work = Path(tempfile.mkdtemp(prefix="tetra-bench-est-"))
    print(f"work directory: {work}", flush=True)
    requests = core_setup.make_requests(args.requests, BENCH_PROFILE)
    # Client-certificate rows: one device's name with a fresh key per CSR (its certificate may
    # enrol only its own names); Basic rows: a different name per CSR.
    by_auth = {"cert": core_setup.make_requests(args.requests, BENCH_PROFILE, host=CLIENT_NAME), "basic": requests}
    results: list[Result] = []
    started: list[TetraServer | LibestServer] = []
    try:
        ca_dir = await core_setup.make_ca_dir(work / "ca", "sw-p256")
        for c in concurrencies:
            result = await core_row(ca_dir, work, requests, c, args)
            results.append(result)
            print(table([result]).splitlines()[-1], flush=True)
        instances: dict[str, TetraServer | LibestServer] = {}
        if "tetra" in servers:
            instances["tetra"] = TetraServer(ca_dir, work, args.database, args.db_mode, BENCH_PROFILE)
        if "libest" in servers:
            (work / "libest").mkdir()
            instances["libest"] = LibestServer(work / "libest")
        for auth in auths:
            for c in concurrencies:
                for server in instances.values():
                    started.append(server)
                    server.start()  # fresh for every row: same state, and a fresh database for Tetra
                    try:
                        result = load(server, by_auth[auth], auth, c, args, work)
                    finally:
                        server.stop()
                        started.remove(server)
                    results.append(result)
                    print(table([result]).splitlines()[-1], flush=True)
                    for note in result.notes:
                        print(f"    {note}", flush=True)
    finally:
        for server in started:
            server.stop()
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    md = (
        f"# EST simpleenroll benchmark\n\n`python bench/bench_est.py`\n\n{environment(args)}\n\n{table(results)}\n\n"
        f"{summary(results, concurrencies, auths)}\n"
    )
    noted = [r for r in results if r.notes]
    if noted:
        md += "\n## Errors\n\n" + "".join(
            f"- {r.server} / {r.auth} / {r.concurrency}: {'; '.join(r.notes)}\n" for r in noted
        )
    print()
    print(md)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(md)
    print(f"written to {args.output}")
    failed = [r for r in results if r.errors and (r.server != LibestServer.label or "sample" in " ".join(r.notes))]
    return 1 if failed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per row")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per row")
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--auth", default="cert,basic", help="cert (TLS client certificate), basic (HTTP Basic)")
    p.add_argument("--servers", default="tetra,libest")
    p.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--db-mode", choices=("async", "thread"), default="thread", help="thread: SQLite's default")
    p.add_argument("--requests", type=int, default=2000, help="distinct pre-built CSRs (cycled)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (server logs)")
    p.add_argument("--output", type=Path, default=RESULTS / "est.md")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
