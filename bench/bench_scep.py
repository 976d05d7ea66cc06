"""SCEP benchmark: PKCSReq enrolments per second over plain HTTP with keep-alive, from Tetra's
`tetra serve` and from micromdm's `scepserver` (Go), one load generator, in the same run.

    python bench/bench_scep.py [--seconds 5] [--warmup 1] [--concurrency 1,8,16,32]
                               [--servers tetra,micromdm] [--messages 2500] [--output FILE]

Messages: `--messages` devices, each a fresh RSA-2048 key, a CSR carrying the static challenge
and a self-signed signer certificate (scep_setup.make_devices, on every CPU), and for each
server a PKCSReq built for it (AES-128-CBC envelope to the certificate its GetCACert names,
SHA-256 signature, its own transactionID and senderNonce), all before any timing. Each
message is sent at most once per row; each row starts its server fresh (Tetra on a new SQLite
database, scepserver on a new depot holding the same CA), so the next row may send the same
messages again. A row that runs out of messages says so (raise --messages).

Load: one generator process (scep_loadgen.py: asyncio + uvloop, loadgen.run_asyncio),
`concurrency` keep-alive connections, a warm-up, then the measured window; it reads every
answer's pkiStatus and the server's CPU time (all its processes, /proc) as the window opens
and closes. Before each row a few extra messages are sent one by one and their CertReps
parsed in full: SUCCESS, signed by the server, and a certificate for the device's key (for
Tetra strictly, SCEP-12: recipientNonce = senderNonce, a fresh senderNonce, the transactionID).

Reported per row: requests, successes (CertRep SUCCESS), failures (HTTP errors, FAILURE or
PENDING, dropped connections, answers slower than --timeout), enrolments/s, server CPU
seconds, enrolments per server CPU-second, p50/p99. Then whether the issue's aim held: Tetra
at least 2x scepserver's enrolments/s at concurrency 16, and no failure at 32. A missed aim is
reported, not an error: the exit status is 1 only when a Tetra row failed requests or a
sample reply was wrong (scepserver's failures under concurrency are its own, and reported).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

from cryptography.hazmat.primitives.serialization import Encoding

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_core import git_state  # noqa: E402
from loadgen import write_record, write_requests  # noqa: E402
from scep_setup import (  # noqa: E402
    Device,
    MicromdmServer,
    TetraScepServer,
    http_post,
    make_devices,
    pkcsreq_request,
    read_sample,
    recipient_certificate,
)

RESULTS = Path(__file__).resolve().parent / "results"
Server: TypeAlias = TetraScepServer | MicromdmServer
AIM_RATIO, AIM_RATIO_AT, AIM_CLEAN_AT = 2.0, 16, 32  # issue 12: >= 2x scepserver at 16, no failure at 32


@dataclass
class Result:
    server: str
    concurrency: int
    successes: int = 0
    failures: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return self.successes + self.failures

    @property
    def rate(self) -> float:
        return self.successes / self.seconds if self.seconds else 0.0

    @property
    def per_cpu(self) -> float:
        return self.successes / self.cpu if self.cpu else 0.0


def sample_check(server: Server, devices: list[Device], keep: Path | None) -> list[str]:
    """Send each sample device's message alone and parse its CertRep in full: what was wrong
    (a failure for Tetra), and, once, how scepserver's replies depart from RFC 8894 (a note).
    With `keep`, Tetra's sample certificates are written there (DER) for a test to lint."""
    assert server.recipient is not None
    notes: list[str] = []
    strict = isinstance(server, TetraScepServer)
    for device in devices:
        status, body = http_post(server.port, pkcsreq_request(server.path, device.messages[server.label].der))
        if status != 200:
            notes.append(f"sample reply wrong: HTTP {status}: {body[:200]!r}")
            continue
        verdict = read_sample(device, server.label, body, server.recipient, strict=strict)
        if verdict.problem:
            notes.append(f"sample reply wrong: {verdict.problem}")
        elif verdict.deviation and not any(verdict.deviation in n for n in notes):
            notes.append(f"sample replies carry their certificate, but {verdict.deviation}")
        if keep is not None and strict and verdict.certificate is not None:
            keep.mkdir(parents=True, exist_ok=True)
            (keep / f"{device.name}.der").write_bytes(verdict.certificate.public_bytes(Encoding.DER))
    return notes


def load(server: Server, raw: list[bytes], concurrency: int, args: argparse.Namespace, work: Path) -> Result:
    """One row: the generator process against a started server."""
    assert server.proc is not None
    requests_file = work / "requests"
    write_requests(requests_file, raw)
    job = {
        "host": "127.0.0.1",
        "port": server.port,
        "pid": server.proc.pid,
        "requests": str(requests_file),
        "concurrency": concurrency,
        "warmup": args.warmup,
        "seconds": args.seconds,
        "timeout": args.timeout,
    }
    (work / "job.json").write_text(json.dumps(job))
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve().parent / "scep_loadgen.py"), str(work / "job.json")],
        capture_output=True,
        text=True,
        timeout=args.warmup + args.seconds + args.timeout + 300,
    )
    if done.returncode != 0:
        raise SystemExit(f"scep_loadgen.py failed: {done.stderr[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    result = Result(server.label, concurrency, seconds=float(out["seconds"]), cpu=float(out["cpu_seconds"]))
    result.successes = int(out["answers"].get("SUCCESS", 0))
    result.failures = int(out["errors"])
    result.p50_ms = float(out["quantiles"].get("0.5", 0)) * 1e3
    result.p99_ms = float(out["quantiles"].get("0.99", 0)) * 1e3
    if out["first_error"]:
        result.notes.append(f"first failure: {out['first_error']}")
    other = {kind: n for kind, n in out["answers"].items() if kind != "SUCCESS"}
    if other:
        result.notes.append(f"CertReps other than SUCCESS: {other}")
    if out["exhausted"]:
        result.notes.append(f"all {len(raw)} messages sent before the window closed: raise --messages")
    return result


def table(results: list[Result]) -> str:
    lines = [
        "| server | concurrency | requests | successes | failures | enrolments/s | server CPU s "
        "| enrolments/CPU-s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.server} | {r.concurrency} | {r.requests} | {r.successes} | {r.failures} | {r.rate:,.0f} "
            f"| {r.cpu:.2f} | {r.per_cpu:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} |"
        )
    return "\n".join(lines)


def find(results: list[Result], server: str, concurrency: int) -> Result | None:
    return next((r for r in results if (r.server, r.concurrency) == (server, concurrency)), None)


def summary(results: list[Result]) -> str:
    """Per concurrency Tetra against scepserver, and whether the issue's aim held (never an error)."""
    lines = []
    for c in sorted({r.concurrency for r in results}):
        tetra, go = find(results, TetraScepServer.label, c), find(results, MicromdmServer.label, c)
        if tetra and go and go.rate and go.per_cpu:
            lines.append(
                f"- concurrency {c}: Tetra {tetra.rate:,.0f}/s vs scepserver {go.rate:,.0f}/s = "
                f"{tetra.rate / go.rate:.2f}x; per server CPU-second {tetra.per_cpu:,.0f} vs {go.per_cpu:,.0f} = "
                f"{tetra.per_cpu / go.per_cpu:.2f}x"
            )
    tetra, go = find(results, TetraScepServer.label, AIM_RATIO_AT), find(results, MicromdmServer.label, AIM_RATIO_AT)
    if tetra and go and go.rate:
        met = tetra.rate >= AIM_RATIO * go.rate
        lines.append(
            f"- aim, at least {AIM_RATIO:g}x scepserver's enrolments/s at concurrency {AIM_RATIO_AT}: "
            f"{'MET' if met else 'MISSED'} ({tetra.rate / go.rate:.2f}x)"
        )
    clean = find(results, TetraScepServer.label, AIM_CLEAN_AT)
    if clean:
        lines.append(
            f"- aim, no failure at concurrency {AIM_CLEAN_AT}: "
            f"{'MET' if clean.failures == 0 and clean.successes else 'MISSED'} ({clean.failures} failures)"
        )
    return "\n".join(lines)


def environment(args: argparse.Namespace, load: str) -> str:
    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    go = subprocess.run(["scepserver", "-version"], capture_output=True, text=True)
    return "\n".join(
        [
            f"- code: {git_state()}",
            f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {args.warmup:g} s warm-up, "
            f"then {args.seconds:g} s measured per row; load average before the run: {load}",
            f"- machine: {platform.node()}, {os.cpu_count()} CPUs; Python {platform.python_version()}, {openssl}; "
            "servers and the load generator (one process, asyncio over plain HTTP, keep-alive) share them",
            f"- Tetra: one `tetra serve` ({f'{args.workers} workers' if args.workers else 'default worker count'}), "
            "SCEP only, on the plain-HTTP listener, "
            "from a `tetra init` directory: its demo SCEP profile with a static challenge; SQLite, fresh per row",
            f"- scepserver: micromdm's (Debian `scep`, {(go.stdout or go.stderr).strip() or 'version unknown'}), "
            "`scepserver ca -init -keySize 2048`, `-challenge`, a fresh depot with the same CA per row",
            f"- {args.messages} devices: RSA-2048 keys, CSR with the challenge, PKCSReq with AES-128-CBC and "
            "SHA-256, one transactionID each, each sent at most once per row",
        ]
    )


async def main(args: argparse.Namespace) -> int:
    concurrencies = [int(c) for c in args.concurrency.split(",") if c]
    names = [s for s in args.servers.split(",") if s]
    load_average = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="tetra-bench-scep-"))
    print(f"work directory: {work}", flush=True)
    results: list[Result] = []
    failed = False
    started: list[Server] = []
    try:
        tetra = TetraScepServer(work, args.workers)
        servers: list[Server] = [tetra] if "tetra" in names else []
        if "micromdm" in names:
            servers.append(MicromdmServer(work, tetra.challenge))
        for server in servers:  # GetCACert once: the certificate each server's messages are encrypted to
            started.append(server)
            server.start()
            server.recipient = recipient_certificate(server.port, server.path)
            server.stop()
            started.remove(server)
        recipients = {server.label: server.recipient for server in servers if server.recipient is not None}
        devices = make_devices(args.messages + args.sample, tetra.challenge, recipients)
        print(f"{len(devices)} devices made", flush=True)
        messages = {s.label: [pkcsreq_request(s.path, d.messages[s.label].der) for d in devices] for s in servers}
        for c in concurrencies:
            for server in servers:
                raw = messages[server.label]
                started.append(server)
                server.start()  # fresh for every row: same state, nothing remembered from the last one
                try:
                    notes = sample_check(server, devices[args.messages :], args.certificates)
                    result = load(server, raw[: args.messages], c, args, work)
                finally:
                    server.stop()
                    started.remove(server)
                result.notes = notes + result.notes
                wrong = any(n.startswith("sample reply wrong") for n in notes)
                failed |= wrong or (server is tetra and result.failures > 0)
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
        f"# SCEP PKCSReq benchmark\n\n`python bench/bench_scep.py`\n\n{environment(args, load_average)}\n\n"
        f"{table(results)}\n\n{summary(results)}\n"
    )
    noted = [r for r in results if r.notes]
    if noted:
        md += "\n## Notes\n\n" + "".join(f"- {r.server} / {r.concurrency}: {'; '.join(r.notes)}\n" for r in noted)
    write_record(args, md, results, load_average)
    return 1 if failed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per row")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per row")
    p.add_argument("--concurrency", default="1,8,16,32")
    p.add_argument("--servers", default="tetra,micromdm", help="tetra, micromdm (scepserver)")
    p.add_argument("--messages", type=int, default=2500, help="devices (keys, CSRs, messages) per row, each sent once")
    p.add_argument("--sample", type=int, default=3, help="extra messages per row whose CertRep is parsed in full")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds an answer may take before it is a failure")
    p.add_argument("--workers", type=int, help="Tetra's [server] workers (default: the server's own default)")
    p.add_argument("--certificates", type=Path, help="write Tetra's sample certificates (DER) to this folder")
    p.add_argument("--keep", action="store_true", help="keep the work directory (server logs)")
    p.add_argument("--output", type=Path, default=RESULTS / "scep.md", help="markdown; the JSON record beside it")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
