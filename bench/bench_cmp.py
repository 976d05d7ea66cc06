"""CMP benchmark: ir -> ip round trips per second, MAC- and signature-protected, from Tetra's
`tetra serve` (really issuing) and from OpenSSL's mock CMP server (`openssl cmp -port`, which
answers every ir with one fixed certificate), beside the core's own issuance rate, in one run.

    python bench/bench_cmp.py [--seconds 5] [--warmup 1] [--concurrency 1,8,32]
                              [--protections mac,sig] [--servers tetra,mock,core] [--messages 4000]

A round trip is one ir answered by an ip carrying a certificate. Every ir asks for
implicitConfirm and both servers grant it (Tetra's [cmp] implicit_confirm, the mock's
-grant_implicitconf), so an enrolment is one round trip and no certConf is sent: that is the
headline, and the only mode measured.

Messages (cmp_setup.make_irs, on every CPU, before timing): each ir has a fresh P-256 key, its
own transactionID and senderNonce, a signature POP, subject CN and a SAN dNSName; MAC rows use
PasswordBasedMac as OpenSSL 3.0 does (SHA-256 OWF, 500 iterations, HMAC-SHA1) with a fresh salt
per message, signature rows ECDSA P-256 with the signing certificate in extraCerts (for Tetra
a certificate it issued, for the mock tests/vectors/cmp/client.pem). Each message is sent once.
Each row starts its server fresh (Tetra on a new SQLite database with the secret added and the
signing certificate enrolled again), then checks a few sample replies in full (ip, certificate
for the request's key, protection verified, transactionID/recipNonce echoed, implicitConfirm).

Load: one generator process (cmp_loadgen.py: asyncio + uvloop, loadgen.run_asyncio),
`concurrency` connections, a warm-up, then the measured window (Tetra gets each ir at most once;
the mock, which remembers no finished transaction, gets the list cycled); it reads every answer's body
type and status and the server's CPU time (all its processes, /proc) as the window opens and
closes. Tetra is driven over keep-alive connections; the mock over a connection per ir, because
it closes a connection when its transaction ends (tests/cmp_mock.py).

The core rows are bench_core's (run_row: `CertificateAuthority.enroll` in this process, same
CA directory and profile, SQLite, store and audit checked after), with this process's CPU time.

Reported per row: round trips (ip with a certificate), failures, round trips/s, server CPU
seconds, round trips per server CPU-second, p50/p99. The aim: Tetra, really issuing, at least
matches the mock's round trips per server CPU-second (per protection and concurrency): MET or
MISSED, never an error. Exit status 1 only when a Tetra row failed or a sample reply was wrong.
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

from cryptography.hazmat.primitives.serialization import Encoding

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import core_setup  # noqa: E402
from bench_core import Row, git_state, run_row  # noqa: E402
from cmp_setup import CmpServer, OpenSslMock, TetraCmpServer, make_irs, requests_for, sample  # noqa: E402
from core_setup import BENCH_PROFILE  # noqa: E402
from loadgen import write_record, write_requests  # noqa: E402

from ca.enrollment import EnrollmentRequest  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CORE = "Tetra core (no HTTP)"


@dataclass
class Result:
    server: str
    protection: str
    concurrency: int
    round_trips: int = 0
    failures: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.round_trips / self.seconds if self.seconds else 0.0

    @property
    def per_cpu(self) -> float:
        return self.round_trips / self.cpu if self.cpu else 0.0


def sample_check(server: CmpServer, kind: str, count: int, keep: Path | None) -> list[str]:
    """``count`` irs sent one by one and their replies read in full; problems are notes that fail
    the run. With ``keep``, Tetra's sample certificates are written there (DER) for a test to lint."""
    notes = []
    for index in range(count):
        verdict = sample(server, server.credentials(kind), 10_000_000 + index)
        if verdict.problem:
            notes.append(f"sample reply wrong: {verdict.problem}")
        if keep is not None and isinstance(server, TetraCmpServer) and verdict.certificate is not None:
            keep.mkdir(parents=True, exist_ok=True)
            serial = verdict.certificate.serial_number
            (keep / f"{kind}-{serial:x}.der").write_bytes(verdict.certificate.public_bytes(Encoding.DER))
    return notes


def load(
    server: CmpServer, raw: list[bytes], kind: str, concurrency: int, args: argparse.Namespace, work: Path
) -> Result:
    """One row: the generator process against a started server."""
    assert server.proc is not None
    write_requests(work / "requests", raw)
    job = {
        "host": "127.0.0.1",
        "port": server.port,
        "pid": server.proc.pid,
        "requests": str(work / "requests"),
        "concurrency": concurrency,
        "warmup": args.warmup,
        "seconds": args.seconds,
        "timeout": args.timeout,
        "once": isinstance(server, TetraCmpServer),  # the mock remembers no transaction: it may get an ir again
    }
    (work / "job.json").write_text(json.dumps(job))
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve().parent / "cmp_loadgen.py"), str(work / "job.json")],
        capture_output=True,
        text=True,
        timeout=args.warmup + args.seconds + args.timeout + 300,
    )
    if done.returncode != 0:
        raise SystemExit(f"cmp_loadgen.py failed: {done.stderr[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    result = Result(server.label, kind, concurrency, seconds=float(out["seconds"]), cpu=float(out["cpu_seconds"]))
    answers: dict[str, int] = out["answers"]
    result.round_trips = sum(n for what, n in answers.items() if what.endswith(" accepted"))
    result.failures = int(out["errors"])
    result.p50_ms = float(out["quantiles"].get("0.5", 0)) * 1e3
    result.p99_ms = float(out["quantiles"].get("0.99", 0)) * 1e3
    if out["first_error"]:
        result.notes.append(f"first failure: {out['first_error']}")
    other = {what: n for what, n in answers.items() if not what.endswith(" accepted")}
    if other:
        result.notes.append(f"answers other than a certificate: {other}")
    if out["exhausted"]:
        result.notes.append(f"all {len(raw)} messages sent before the window closed: raise --messages")
    return result


async def core_row(
    ca_dir: Path, work: Path, requests: list[EnrollmentRequest], concurrency: int, args: argparse.Namespace
) -> Result:
    """bench_core's row (fresh SQLite database, enroll from `concurrency` tasks, store checked
    after), with this process's CPU time read as its measured window opens and closes."""
    cpu: list[float] = []
    hooks = (lambda: cpu.append(time.process_time()), lambda: cpu.append(time.process_time()))
    row = Row("sw-p256", "sqlite", "async", concurrency, False)
    await run_row(row, ca_dir, work, requests, args.warmup, args.seconds, {}, hooks)
    result = Result(CORE, "-", concurrency, round_trips=row.window_count, seconds=args.seconds)
    result.cpu = cpu[1] - cpu[0] if len(cpu) == 2 else 0.0
    result.p50_ms, result.p99_ms = row.p50_ms, row.p99_ms
    result.failures = sum(row.errors.values()) + len(row.problems)
    result.notes += [f"{n} x {text}" for text, n in row.errors.most_common(3)] + row.problems
    return result


def table(results: list[Result]) -> str:
    lines = [
        "| server | protection | concurrency | round trips | failures | round trips/s | server CPU s "
        "| round trips/CPU-s | p50 ms | p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.server} | {r.protection} | {r.concurrency} | {r.round_trips} | {r.failures} | {r.rate:,.0f} "
            f"| {r.cpu:.2f} | {r.per_cpu:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} |"
        )
    return "\n".join(lines)


def find(results: list[Result], server: str, protection: str, concurrency: int) -> Result | None:
    return next(
        (r for r in results if (r.server, r.protection, r.concurrency) == (server, protection, concurrency)), None
    )


def summary(results: list[Result]) -> str:
    """Tetra against the mock per protection and concurrency, and whether the aim held."""
    lines, verdicts = [], []
    for protection in sorted({r.protection for r in results if r.protection != "-"}):
        for c in sorted({r.concurrency for r in results}):
            tetra = find(results, TetraCmpServer.label, protection, c)
            mock = find(results, OpenSslMock.label, protection, c)
            core = find(results, CORE, "-", c)
            if not (tetra and mock and mock.rate and mock.per_cpu):
                continue
            met = tetra.per_cpu >= mock.per_cpu and tetra.failures == 0 and tetra.round_trips > 0
            verdicts.append(met)
            line = (
                f"- {protection}, concurrency {c}: Tetra {tetra.rate:,.0f}/s vs mock {mock.rate:,.0f}/s = "
                f"{tetra.rate / mock.rate:.2f}x; per server CPU-second {tetra.per_cpu:,.0f} vs {mock.per_cpu:,.0f} "
                f"= {tetra.per_cpu / mock.per_cpu:.2f}x ({'MET' if met else 'MISSED'})"
            )
            if core and core.rate:
                line += f"; the core alone issues {core.rate:,.0f}/s ({core.per_cpu:,.0f} per CPU-second)"
            lines.append(line)
    if verdicts:
        lines.append(
            "- aim, Tetra (really issuing) at least matches the mock's round trips per server CPU-second: "
            f"{'MET' if all(verdicts) else 'MISSED'} ({sum(verdicts)} of {len(verdicts)} rows)"
        )
    return "\n".join(lines)


def environment(args: argparse.Namespace, load_average: str) -> str:
    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    return "\n".join(
        [
            f"- code: {git_state()}",
            f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {args.warmup:g} s warm-up, "
            f"then {args.seconds:g} s measured per row; load average before the run: {load_average}",
            f"- machine: {platform.node()}, {os.cpu_count()} CPUs; Python {platform.python_version()}, {openssl}; "
            "servers and the load generator (one process, asyncio over plain HTTP) share them",
            f"- Tetra: one `tetra serve` ({f'{args.workers} workers' if args.workers else 'default worker count'}), "
            "CMP only, plain HTTP, keep-alive; bench_core's `tetra init` CA directory (software P-256 issuing CA), "
            f"profile {BENCH_PROFILE} (tls-server without pkilint); SQLite, fresh per row; replies to signed "
            "requests signed by the demo RA key (ra/ra.pem)",
            "- mock: `openssl cmp -port N` (OpenSSL's mock server, one process, one connection at a time), "
            "-srv_ref/-srv_secret, -srv_cert/-srv_key (P-256)/-srv_trusted, -rsp_cert, -rsp_capubs, "
            "-grant_implicitconf; no -no_check_time needed (messageTime is now); a connection per ir",
            f"- each row: up to {args.messages} irs, fresh P-256 key, transactionID and nonce each, implicitConfirm, "
            "each sent once; MAC = PasswordBasedMac (SHA-256, 500 iterations, HMAC-SHA1), signature = ECDSA P-256",
        ]
    )


async def main(args: argparse.Namespace) -> int:
    concurrencies = [int(c) for c in args.concurrency.split(",") if c]
    protections = [p for p in args.protections.split(",") if p]
    names = [s for s in args.servers.split(",") if s]
    load_average = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="tetra-bench-cmp-"))
    print(f"work directory: {work}", flush=True)
    results: list[Result] = []
    failed = False
    started: list[CmpServer] = []
    try:
        ca_dir = await core_setup.make_ca_dir(work / "ca", "sw-p256")
        servers: list[CmpServer] = []
        if "tetra" in names:
            servers.append(TetraCmpServer(ca_dir, work, BENCH_PROFILE, args.workers))
        if "mock" in names:
            servers.append(OpenSslMock(work))
        requests = core_setup.make_requests(args.messages, BENCH_PROFILE) if "core" in names else []
        for c in concurrencies:
            if requests:
                result = await core_row(ca_dir, work, requests, c, args)
                results.append(result)
                print(table([result]).splitlines()[-1], flush=True)
            for kind in protections:
                for server in servers:
                    started.append(server)
                    server.start()  # fresh for every row
                    try:
                        raw = requests_for(server, make_irs(server.credentials(kind), args.messages))
                        notes = sample_check(server, kind, args.sample, args.certificates)
                        result = load(server, raw, kind, c, args, work)
                    finally:
                        server.stop()
                        started.remove(server)
                    result.notes = notes + result.notes
                    wrong = any(n.startswith("sample reply wrong") for n in notes)
                    failed |= wrong or (isinstance(server, TetraCmpServer) and result.failures > 0)
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
        f"# CMP ir benchmark\n\n`python bench/bench_cmp.py`\n\n{environment(args, load_average)}\n\n"
        f"{table(results)}\n\n{summary(results)}\n"
    )
    noted = [r for r in results if r.notes]
    if noted:
        md += "\n## Notes\n\n" + "".join(
            f"- {r.server} / {r.protection} / {r.concurrency}: {'; '.join(r.notes)}\n" for r in noted
        )
    write_record(args, md, results, load_average)
    return 1 if failed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per row")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per row")
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--protections", default="mac,sig", help="mac (PasswordBasedMac), sig (ECDSA)")
    p.add_argument("--servers", default="tetra,mock,core", help="tetra, mock (openssl cmp -port), core (no HTTP)")
    p.add_argument("--messages", type=int, default=4000, help="irs built per row, each sent once")
    p.add_argument("--sample", type=int, default=3, help="extra irs per row whose replies are read in full")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds an answer may take before it is a failure")
    p.add_argument("--workers", type=int, help="Tetra's [server] workers (default: the server's own default)")
    p.add_argument("--certificates", type=Path, help="write Tetra's sample certificates (DER) to this folder")
    p.add_argument("--keep", action="store_true", help="keep the work directory (server logs)")
    p.add_argument("--output", type=Path, default=RESULTS / "cmp.md", help="markdown; the JSON record beside it")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
