"""Core issuance benchmark: certificates per second through CertificateAuthority.enroll,
without HTTP, in one process, beside what cryptography alone can build and sign.

    python bench/bench_core.py [--quick] [--seconds N] [--warmup N]
                               [--backends sw-p256,sw-rsa2048,hsm-p256] [--dbs sqlite,postgresql]
                               [--modes async,thread] [--concurrency 1,32] [--no-lint-rows]
                               [--profile MODE] [--prototype NAME,...] [--output FILE]

For every issuer backend (software P-256, software RSA-2048, SoftHSM P-256), database
(SQLite file with WAL + synchronous=FULL; PostgreSQL with synchronous_commit=on), database
mode (async: aiosqlite/asyncpg; thread: pysqlite/psycopg in a thread pool) and concurrency
(1, 32) it issues certificates from pre-built requests (P-256 leaf keys, profile tls-server
with lint off) for a fixed time after a warm-up, into a fresh database, then checks that
every certificate it was handed is in the store with status 'issued' and that the audit
chain holds exactly two events per certificate. One more row per database and mode issues
with the shipped tls-server profile (pkilint gate on, cabf-serverauth).

The "build-and-sign" column is the same process building and signing the same certificate
with cryptography's CertificateBuilder and the same issuer key, sequentially (it is
CPU-bound: more concurrency in one process does not raise it, so the concurrency-32 rows
are compared with the same sequential rate).

--profile MODE profiles software P-256 / PostgreSQL / concurrency 32 in that mode
(cProfile of the event-loop thread) instead of running the table.
--prototype applies monkeypatches from bench/core_prototypes.py (measuring proposed core
changes without editing the core); the table then says which were active.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import datetime as dt
import io
import os
import platform
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import core_setup

core_breakdown: Any = None
from core_setup import BACKENDS, BENCH_PROFILE, LINT_PROFILE  # noqa: E402

from ca.enrollment import EnrollmentRequest, Issued  # noqa: E402
from ca.service import CertificateAuthority  # noqa: E402
from server.wiring import build_ca, read_config  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DB_LABEL = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


@dataclass
class Row:
    backend: str
    db: str
    mode: str
    concurrency: int
    lint: bool
    rate: float = 0.0
    baseline: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    issued_total: int = 0
    window_count: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return str(BACKENDS[self.backend][0]) + (" + pkilint" if self.lint else "")


# -- driving the core ------------------------------------------------------------------------


@dataclass
class Drive:
    in_window: int = 0
    issued: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


async def drive(
    ca: CertificateAuthority,
    requests: list[EnrollmentRequest],
    concurrency: int,
    warmup: float,
    seconds: float,
    on_window: tuple[object, object] | None = None,
) -> Drive:
    """`concurrency` tasks call enroll back to back; completions inside the window are counted."""
    out = Drive()
    start = time.perf_counter()
    t_from, t_to = start + warmup, start + warmup + seconds
    nxt = 0
    window_open = False

    async def worker() -> None:
        nonlocal nxt, window_open
        while True:
            t0 = time.perf_counter()
            if t0 >= t_to:
                return
            if on_window is not None and not window_open and t0 >= t_from:
                window_open = True
                on_window[0]()  # type: ignore[operator]
            request = requests[nxt % len(requests)]
            nxt += 1
            try:
                outcome = await ca.enroll(await ca.decide(request))
            except Exception as exc:  # counted and shown, never hidden
                out.errors[f"{type(exc).__name__}: {str(exc)[:160]}"] += 1
                await asyncio.sleep(0.001)
                continue
            t1 = time.perf_counter()
            if not isinstance(outcome, Issued):
                out.errors[f"not issued: {type(outcome).__name__}"] += 1
                continue
            out.issued += 1
            if t_from <= t1 < t_to:
                out.in_window += 1
                out.latencies.append(t1 - t0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if on_window is not None and window_open:
        on_window[1]()  # type: ignore[operator]
    return out


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def durability(ca: CertificateAuthority) -> tuple[str, list[str]]:
    """What the store's own connections say about durability; problems if commits are not durable."""
    problems = []
    if ca.db.backend == "sqlite":
        journal = await ca.db.read(lambda c: c.exec_driver_sql("PRAGMA journal_mode").scalar())
        sync = await ca.db.read(lambda c: c.exec_driver_sql("PRAGMA synchronous").scalar())
        if str(journal).lower() != "wal" or int(sync or 0) < 2:
            problems.append(f"SQLite not durable: journal_mode={journal} synchronous={sync}")
        return f"journal_mode={journal}, synchronous={sync} (2 = FULL)", problems
    sc = await ca.db.read(lambda c: c.exec_driver_sql("SHOW synchronous_commit").scalar())
    fs = await ca.db.read(lambda c: c.exec_driver_sql("SHOW fsync").scalar())
    if sc != "on" or fs != "on":
        problems.append(f"PostgreSQL not durable: synchronous_commit={sc} fsync={fs}")
    return f"synchronous_commit={sc}, fsync={fs}", problems


async def verify_store(ca: CertificateAuthority, issued: int) -> list[str]:
    problems = []
    counts = await ca.certificates.count_by_status()
    if counts != ({"issued": issued} if issued else {}):
        problems.append(f"store has {counts}, expected {{'issued': {issued}}}")
    report = await ca.audit.verify()
    if not report.ok:
        problems.append(f"audit chain: {'; '.join(report.problems[:3])}")
    if report.events != 2 * issued:
        problems.append(f"audit log has {report.events} events, expected {2 * issued}")
    return problems


async def run_row(
    row: Row,
    ca_dir: Path,
    work: Path,
    requests: list[EnrollmentRequest],
    warmup: float,
    seconds: float,
    notes: dict[str, str],
    on_window: tuple[object, object] | None = None,
) -> Row:
    fresh = core_setup.fresh_database(row.db, work / "db", f"{row.backend}-{row.mode}-{row.concurrency}")
    try:
        config = read_config(
            ca_dir / "tetra.toml", environ={"TETRA_DATABASE__URL": fresh.url, "TETRA_DATABASE__MODE": row.mode}
        )
        ca = await build_ca(config)
        try:
            text, problems = await durability(ca)
            notes.setdefault(f"{DB_LABEL[row.db]} ({row.mode})", text)
            if problems:
                row.problems += problems
                return row
            result = await drive(ca, requests, row.concurrency, warmup, seconds, on_window)
            row.rate = result.in_window / seconds
            row.window_count = result.in_window
            lat = sorted(result.latencies)
            row.p50_ms, row.p99_ms = percentile(lat, 0.50) * 1e3, percentile(lat, 0.99) * 1e3
            row.issued_total = result.issued
            row.errors = result.errors
            row.problems += await verify_store(ca, result.issued)
        finally:
            await ca.close()
    finally:
        fresh.drop()
    return row


# -- baseline ---------------------------------------------------------------------------------


class BaselineRunner:
    """Sequential build-and-sign with the issuer's key, measured beside every row (the machine's
    speed drifts, so each row is compared with a rate taken just before and just after it)."""

    def __init__(self, ca: CertificateAuthority, base: core_setup.Baseline, requests: list[EnrollmentRequest]) -> None:
        self.ca = ca
        self.base = base
        self.requests = requests

    @classmethod
    async def open(cls, ca_dir: Path, requests: list[EnrollmentRequest]) -> BaselineRunner:
        """Uses the demo's own SQLite store, only to check the baseline certificate matches the core's."""
        ca = await build_ca(read_config(ca_dir / "tetra.toml"))
        template = (await ca.decide(requests[0])).template
        issuer = ca.issuers[template.issuer_name]
        base = core_setup.Baseline(
            issuer,
            template.key_usage,
            list(template.extended_key_usage),
            list(template.profile.policies),
            issuer.hash_for(template),
        )
        core_cert = await ca.enroll(await ca.decide(requests[0]))
        assert isinstance(core_cert, Issued)
        problems = core_setup.same_shape(core_cert.certificate, base.build_and_sign(requests[0]))
        if problems:
            await ca.close()
            raise SystemExit(f"baseline certificate differs from the core's: {problems}")
        return cls(ca, base, requests)

    def measure(self, seconds: float, warmup: float = 0.2) -> float:
        build, requests, n = self.base.build_and_sign, self.requests, len(self.requests)
        end = time.perf_counter() + warmup
        i = 0
        while time.perf_counter() < end:
            build(requests[i % n])
            i += 1
        count = 0
        start = time.perf_counter()
        end = start + seconds
        while True:
            build(requests[count % n])
            count += 1
            if count % 16 == 0 and time.perf_counter() >= end:
                break
        return count / (time.perf_counter() - start)

    async def close(self) -> None:
        await self.ca.close()


# -- report -----------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    lines = [
        "| backend | db | mode | concurrency | certs/s | build-and-sign/s | % of build-and-sign | p50 ms | p99 ms "
        "| errors |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        errs = sum(r.errors.values()) + len(r.problems)
        pct = 100 * r.rate / r.baseline if r.baseline else 0.0
        lines.append(
            f"| {r.label} | {DB_LABEL[r.db]} | {r.mode} | {r.concurrency} | {r.rate:,.0f} | {r.baseline:,.0f} "
            f"| {pct:.1f}% | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {errs} |"
        )
    return "\n".join(lines)


def git_state() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "ca", "server"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    changed = [line[3:] for line in dirty if line.strip()]
    return f"commit {head}" + (f" plus uncommitted changes to {', '.join(changed)}" if changed else "")


def environment(notes: dict[str, str], args: argparse.Namespace, prototypes: list[str]) -> str:
    import cryptography
    import sqlalchemy

    cpu = "?"
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    try:
        pg = core_setup.pg_setting("server_version")
    except Exception:
        pg = "unreachable"
    lines = [
        f"- code: {git_state()}",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; "
        f"{args.warmup:g} s warm-up, then {args.seconds:g} s measured per row",
        f"- machine: {cpu}, {os.cpu_count()} CPUs; Python {platform.python_version()}, "
        f"cryptography {cryptography.__version__}, SQLAlchemy {sqlalchemy.__version__}, PostgreSQL {pg} (local)",
        '- leaf keys: P-256, one DNS name; profile `bench-tls` (tls-server with `lint = "none"`) unless '
        "marked `+ pkilint` (tls-server as shipped: cabf-serverauth gate)",
        "- build-and-sign/s: cryptography CertificateBuilder + sign with the same issuer key, same extensions, "
        "sequential in this process, measured for half the row's time just before and just after each row "
        "(mean of the two; this VM's speed drifts by up to 30% between minutes). Concurrency-32 rows compare "
        "with the same sequential rate: it is CPU-bound and cryptography holds the GIL while it signs, so "
        "threads or tasks in one process cannot raise it",
        "- durability as read back on the store's connections: "
        + "; ".join(f"{k}: {v}" for k, v in sorted(notes.items())),
        "- every row starts on a fresh database; afterwards the store must hold exactly the certificates the "
        "benchmark was handed, all `issued`, and an intact audit chain with two events each (`errors` counts "
        "both failed requests and failed checks)",
    ]
    if prototypes:
        lines.append(f"- PROTOTYPE core changes active (bench/core_prototypes.py): {', '.join(prototypes)}")
    return "\n".join(lines)


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="short rows (0.5 s warm-up, 2 s measured)")
    p.add_argument("--seconds", type=float, default=None, help="measured seconds per row (default 5)")
    p.add_argument("--warmup", type=float, default=None, help="warm-up seconds per row (default 1)")
    p.add_argument("--backends", default=",".join(BACKENDS))
    p.add_argument("--dbs", default="sqlite,postgresql")
    p.add_argument("--modes", default="async,thread")
    p.add_argument("--concurrency", default=None, help="default 1,32 (32 with --profile)")
    p.add_argument("--no-lint-rows", action="store_true")
    p.add_argument(
        "--profile",
        metavar="MODE",
        choices=("async", "thread"),
        help="cProfile software P-256 / PostgreSQL / concurrency 32 in this mode instead",
    )
    p.add_argument(
        "--profiler",
        choices=("py-spy", "cprofile"),
        default="py-spy" if (Path(sys.executable).parent / "py-spy").exists() else "cprofile",
    )
    p.add_argument("--prototype", default="", help="comma-separated monkeypatches from bench/core_prototypes.py")
    p.add_argument(
        "--breakdown",
        action="store_true",
        help="print each row's CPU per certificate (timed crypto/policy steps, loop thread, process, PostgreSQL)",
    )
    p.add_argument("--output", type=Path, default=None)
    p.add_argument("--requests", type=int, default=2000, help="distinct pre-built requests (cycled)")
    args = p.parse_args(argv)
    args.seconds = args.seconds if args.seconds is not None else (2.0 if args.quick else 5.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 1.0)
    if args.output is None:
        args.output = RESULTS / ("core-quick.md" if args.quick else "core.md")
    return args


async def main(args: argparse.Namespace) -> int:
    backends = [b for b in args.backends.split(",") if b]
    dbs = [d for d in args.dbs.split(",") if d]
    modes = [m for m in args.modes.split(",") if m]
    concs = [int(c) for c in (args.concurrency or ("32" if args.profile else "1,32")).split(",") if c]
    prototypes = [p for p in args.prototype.split(",") if p]
    if args.profile:
        backends, dbs, modes, concs = ["sw-p256"], ["postgresql"], [args.profile], concs[:1]
    if args.breakdown:
        global core_breakdown
        import core_breakdown as _breakdown

        core_breakdown = _breakdown
        core_breakdown.install()

    import logging

    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="tetra-bench-"))  # on disk (not tmpfs): SQLite fsyncs are real
    print(f"work directory: {work}", flush=True)
    skipped: list[str] = []
    if "hsm-p256" in backends:
        try:
            core_setup.init_softhsm(work / "softhsm")
        except (OSError, subprocess.CalledProcessError, RuntimeError) as exc:
            print(f"SKIPPING SoftHSM rows: {exc}", flush=True)
            skipped.append(f"SoftHSM P-256 ({exc})")
            backends.remove("hsm-p256")
    if "postgresql" in dbs:
        try:
            core_setup.pg_setting("server_version")
        except Exception as exc:  # no server: the SQLite rows still run
            print(f"SKIPPING PostgreSQL rows: {exc}", flush=True)
            skipped.append(f"PostgreSQL ({' '.join(str(exc).split())[:120]})")
            dbs.remove("postgresql")
    requests = core_setup.make_requests(args.requests, BENCH_PROFILE)
    lint_requests = [dataclasses.replace(r, profile_name=LINT_PROFILE) for r in requests]
    notes: dict[str, str] = {}
    rows: list[Row] = []
    try:
        for backend in backends:
            ca_dir = await core_setup.make_ca_dir(work / "ca", backend)
            runner = await BaselineRunner.open(ca_dir, requests)
            half = max(1.0, args.seconds / 2)
            print(f"{BACKENDS[backend][0]}: build-and-sign {runner.measure(half):,.0f}/s", flush=True)
            plan = [(db, mode, c, False) for db in dbs for mode in modes for c in concs]
            if backend == "sw-p256" and not args.no_lint_rows and not args.profile:
                plan += [(db, mode, 32, True) for db in dbs for mode in modes]
            try:
                for db, mode, conc, lint in plan:
                    before = runner.measure(half)
                    row = Row(backend, db, mode, conc, lint)
                    starts: list[Callable[[], None]] = []
                    stops: list[Callable[[], None]] = []
                    prof = window = None
                    if args.profile:
                        prof = Profiler(
                            args.profiler,
                            args.seconds,
                            f"{args.profile}-c{conc}" + ("-prototypes" if args.prototype else ""),
                        )
                        starts.append(prof.start)
                        stops.append(prof.stop)
                    if args.breakdown:
                        window = core_breakdown.Window()
                        starts.append(window.open)
                        stops.append(window.close)
                    hooks = (_call_all(starts), _call_all(stops)) if starts else None
                    await run_row(
                        row, ca_dir, work, lint_requests if lint else requests, args.warmup, args.seconds, notes, hooks
                    )
                    after = runner.measure(half)
                    row.baseline = (before + after) / 2
                    rows.append(row)
                    errs = sum(row.errors.values())
                    print(
                        f"  {row.label:<26} {DB_LABEL[db]:<10} {mode:<6} c={conc:<3} {row.rate:7,.0f}/s "
                        f"({100 * row.rate / row.baseline:5.1f}% of {before:,.0f}..{after:,.0f})  "
                        f"p50 {row.p50_ms:6.2f} ms  p99 {row.p99_ms:6.2f} ms  issued {row.issued_total}  "
                        f"errors {errs}" + (f"  PROBLEMS: {row.problems}" if row.problems else ""),
                        flush=True,
                    )
                    for text, n in row.errors.most_common(5):
                        print(f"      {n} x {text}")
                    if window is not None:
                        print(window.report(row.window_count))
                    if prof is not None:
                        prof.report(row)
            finally:
                await runner.close()
    finally:
        from ca.signers.pkcs11 import shutdown_modules

        shutdown_modules()
        shutil.rmtree(work, ignore_errors=True)
    if args.profile:
        return 0
    env = environment(notes, args, prototypes)
    if skipped:
        env += "\n- NOT MEASURED (unavailable here): " + "; ".join(skipped)
    md = (
        f"# Core issuance benchmark\n\n`python bench/bench_core.py"
        f"{' --quick' if args.quick else ''}`{' --prototype ' + args.prototype if prototypes else ''}\n\n"
        f"{env}\n\n{table(rows)}\n"
    )
    failures = [r for r in rows if r.errors or r.problems]
    if failures:
        md += "\n## Errors\n\n"
        for r in failures:
            md += f"- {r.label} / {DB_LABEL[r.db]} / {r.mode} / {r.concurrency}: "
            md += "; ".join([f"{n} x {t}" for t, n in r.errors.most_common(5)] + r.problems) + "\n"
    print()
    print(md)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(md)
    print(f"written to {args.output}")
    return 1 if failures else 0


def _call_all(fns: list[Callable[[], None]]) -> Callable[[], None]:
    def call() -> None:
        for fn in fns:
            fn()

    return call


class Profiler:
    """Profiles the measured window of a row: py-spy (all threads, sampling; default when installed)
    or cProfile (event-loop thread only, deterministic, inflates Python-heavy code)."""

    def __init__(self, kind: str, seconds: float, mode: str) -> None:
        self.kind = kind
        self.seconds = seconds
        self.mode = mode
        self.prof: cProfile.Profile | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.raw = RESULTS / f"core-profile-{mode}.pyspy.txt"

    def start(self) -> None:
        if self.kind == "cprofile":
            self.prof = cProfile.Profile()
            self.prof.enable()
            return
        spy = Path(sys.executable).parent / "py-spy"
        self.raw.parent.mkdir(parents=True, exist_ok=True)
        self.spy_seconds = max(1, int(self.seconds) - 1)
        self.proc = subprocess.Popen(
            [
                str(spy),
                "record",
                "--gil",
                "--pid",
                str(os.getpid()),
                "-d",
                str(self.spy_seconds),
                "-r",
                "250",
                "-f",
                "raw",
                "-o",
                str(self.raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def stop(self) -> None:
        if self.prof is not None:
            self.prof.disable()

    def report(self, row: Row) -> None:
        head = (
            f"profile: {row.label} / {DB_LABEL[row.db]} / {row.mode} / c={row.concurrency}: "
            f"{row.rate:,.0f}/s ({100 * row.rate / row.baseline:.1f}% of build-and-sign) under the profiler\n"
        )
        if self.proc is not None:
            _, err = self.proc.communicate(timeout=60)
            if self.proc.returncode != 0:
                print(f"py-spy failed: {err.decode()[-500:]}")
                return
            import core_spy

            text = head + core_spy.summarise(str(self.raw), self.spy_seconds) + "\n"
        else:
            assert self.prof is not None
            buf = io.StringIO()
            stats = pstats.Stats(self.prof, stream=buf)
            buf.write(head + "(cProfile: event-loop thread only)\n")
            stats.sort_stats("tottime").print_stats(45)
            stats.sort_stats("cumulative").print_stats(70)
            text = buf.getvalue()
        out = RESULTS / f"core-profile-{self.mode}.txt"
        out.write_text(text)
        print(text)
        print(f"profile written to {out}")


if __name__ == "__main__":
    arguments = parse_args(None)
    if arguments.prototype:
        import core_prototypes

        core_prototypes.apply([p for p in arguments.prototype.split(",") if p])  # before the loop exists (uvloop)
    sys.exit(asyncio.run(main(arguments)))
