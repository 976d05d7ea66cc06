"""LOAD-01 soak: sustained ACME issuance against one `tetra serve`, watched for leaks and drift.

The issuing CA's key is on a SoftHSM2 token (ECDSA P-256) unless --software; the load is
bench_acme.py's (complete issuances with real http-01, pre-built CSRs, new accounts for each
window). Every window records certificates/s, p50/p99, errors and the server's RSS, open file
descriptors, threads and (PostgreSQL) database connections. After warm-up the run passes when:
RSS grows by less than --max-rss-growth MiB, open FDs by at most 16, p99 of the last quarter is
within 2x of the first quarter after warm-up, connections never exceed the pool size, and no
issuance fails. Prints a markdown table and the verdict; exits 1 when a criterion fails.

    python bench/bench_acme_soak.py [--minutes 10] [--concurrency 8] [--database postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_acme import (  # noqa: E402
    Result,
    drive_pool,
    fresh_postgres,
    http01_responder,
    start_dns,
    start_tetra,
    stop,
)

from tests.tetra_process import free_port  # noqa: E402
from tests.unit.protocols.acme.support import make_csr  # noqa: E402

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "4321"
POOL_SIZE = 10  # [database] pool_size given to the server


@dataclass
class Sample:
    minute: float
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    rss_mib: float
    fds: int
    threads: int
    connections: int


def process_status(pid: int) -> tuple[float, int, int]:
    """RSS (MiB), open file descriptors and threads of a process, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    rss = int(fields["VmRSS"].split()[0]) / 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd")), int(fields["Threads"])


def pg_connections(admin_url: str, database_url: str) -> int:
    if not database_url:
        return 0
    name = database_url.rsplit("/", 1)[1]
    out = subprocess.run(
        ["psql", admin_url, "-tAc", f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}'"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


Prepare = Callable[[Path, dict[str, str]], None]


def hsm_issuer(work: Path) -> tuple[str, Prepare]:
    """A `prepare` hook for start_tetra: a SoftHSM token and an issuing CA whose key lives on it,
    used by a `soak` profile (tls-server's rules, pkilint gate included)."""

    def prepare(directory: Path, env: dict[str, str]) -> None:
        tokens = work / "softhsm" / "tokens"
        tokens.mkdir(parents=True, exist_ok=True)
        conf = work / "softhsm" / "softhsm2.conf"
        conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
        env.update({"SOFTHSM2_CONF": str(conf), "TETRA_SOAK_PIN": PIN})
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", "soak", "--pin", PIN, "--so-pin", "8765"],
            env=env,
            check=True,
            capture_output=True,
        )
        tetra = str(Path(sys.executable).parent / "tetra")
        ca, keys = directory / "ca", directory / "keys"
        command = [tetra, "ca", "init-intermediate", "--name", "soak-hsm", "--out-dir", str(ca)]
        command += ["--parent-cert", str(ca / "root.pem"), "--parent-key", str(keys / "root.key")]
        command += ["--parent-passphrase-file", str(directory / "secrets" / "passphrase")]
        command += ["--pkcs11-uri", "pkcs11:token=soak;object=soak-ca", "--module", SOFTHSM_MODULE]
        command += ["--pin-env", "TETRA_SOAK_PIN", "--key-type", "ec-p256"]
        command += ["--add-to-config", str(directory / "tetra.toml")]
        subprocess.run(command, env=env, check=True, capture_output=True)
        profile = (directory / "profiles" / "tls-server.toml").read_text()
        (directory / "profiles" / "soak.toml").write_text('issuer = "soak-hsm"\n' + profile)

    return "soak", prepare


def verdict(samples: list[Sample], warmup: int, max_rss_growth: float) -> list[str]:
    """The LOAD-01 criteria that failed (empty: passed)."""
    failures = []
    settled = samples[warmup:]
    if len(settled) < 4:
        return [f"too short: {len(settled)} windows after warm-up (need 4)"]
    growth = max(s.rss_mib for s in settled) - settled[0].rss_mib
    if growth >= max_rss_growth:
        failures.append(f"RSS grew {growth:.1f} MiB after warm-up (limit {max_rss_growth:g})")
    fd_growth = max(s.fds for s in settled) - settled[0].fds
    if fd_growth > 16:
        failures.append(f"open file descriptors grew by {fd_growth}")
    quarter = max(1, len(settled) // 4)
    first = statistics.median(s.p99_ms for s in settled[:quarter])
    last = statistics.median(s.p99_ms for s in settled[-quarter:])
    if last > 2 * first:
        failures.append(f"p99 drifted from {first:.0f} ms to {last:.0f} ms")
    if any(s.connections > POOL_SIZE for s in samples):
        failures.append(f"more than {POOL_SIZE} database connections")
    errors = sum(s.errors for s in samples)
    if errors:
        failures.append(f"{errors} failed issuances")
    return failures


async def soak(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="soak-acme-"))
    key = ec.generate_private_key(ec.SECP256R1())
    names = [f"s{i}.soak.example.com" for i in range(args.pool)]
    pool = [(name, make_csr([name], key)[0].public_bytes(Encoding.DER)) for name in names]
    dns_proc, dns_address = start_dns()
    http01_port = free_port()
    tokens: dict[str, str] = {}
    responder = await http01_responder(http01_port, tokens)
    profile, prepare = hsm_issuer(work) if not args.software else ("tls-server", None)
    database_url = fresh_postgres(args.pg_admin) if args.database == "postgres" else ""
    os.environ["TETRA_DATABASE__POOL_SIZE"] = str(POOL_SIZE)
    proc, url = start_tetra(work, http01_port, dns_address, profile, "thread", 1, database_url, False, prepare)
    samples: list[Sample] = []
    windows = max(1, round(args.minutes * 60 / args.window))
    try:
        for index in range(windows):
            result = Result("tetra", args.concurrency)
            await drive_pool(result, url, proc.pid, args.window, pool, tokens)
            lat = sorted(result.latencies) or [0.0]
            rss, fds, threads = process_status(proc.pid)
            sample = Sample(
                minute=(index + 1) * args.window / 60,
                rate=result.done / result.seconds if result.seconds else 0.0,
                p50_ms=statistics.median(lat) * 1000,
                p99_ms=lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
                errors=result.errors,
                rss_mib=rss,
                fds=fds,
                threads=threads,
                connections=pg_connections(args.pg_admin, database_url),
            )
            samples.append(sample)
            print(json.dumps(sample.__dict__), file=sys.stderr, flush=True)
            if result.first_error:
                print(f"    first error: {result.first_error}", file=sys.stderr)
    finally:
        stop(proc)
        await responder.cleanup()
        stop(dns_proc)
        if database_url:
            name = database_url.rsplit("/", 1)[1]
            drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
            subprocess.run(["psql", args.pg_admin, "-qc", drop], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    signer = "software key" if args.software else "SoftHSM2 ECDSA P-256"
    print(
        f"\nACME soak (LOAD-01): {args.minutes:g} min at concurrency {args.concurrency}, issuing key on {signer}, "
        f"{args.database}, profile {profile} (pkilint gate on), {args.window:g} s windows\n"
    )
    print("| minute | certs/s | p50 ms | p99 ms | errors | RSS MiB | open FDs | threads | DB connections |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in samples:
        print(
            f"| {s.minute:.1f} | {s.rate:.1f} | {s.p50_ms:.0f} | {s.p99_ms:.0f} | {s.errors} | {s.rss_mib:.1f} | "
            f"{s.fds} | {s.threads} | {s.connections if database_url else '-'} |"
        )
    warmup = max(1, round(args.warmup / args.window))
    failures = verdict(samples, warmup, args.max_rss_growth)
    print("\nverdict: " + ("PASS" if not failures else "FAIL: " + "; ".join(failures)))
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=30.0, help="seconds per sample")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the baseline sample")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--pool", type=int, default=4000, help="distinct pre-built CSRs (names)")
    parser.add_argument("--software", action="store_true", help="issuing key in software instead of SoftHSM2")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--pg-admin", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--max-rss-growth", type=float, default=50.0, help="MiB allowed after warm-up")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    sys.exit(asyncio.run(soak(args)))


if __name__ == "__main__":
    main()
