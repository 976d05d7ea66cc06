"""Inventory benchmark: the queries `tetra inventory` makes, over 1,000,000 certificates in PostgreSQL.

    python bench/bench_inventory.py [--certificates 1000000] [--repeat 20] [--explain] [--keep]
                                    [--output FILE]

Issue 15's aim: a 1M-certificate inventory answers "expiring within 30 days" and "search by SAN"
in under 100 ms. This makes a fresh PostgreSQL database (dropped afterwards; --keep keeps it and
reuses it next time), migrates it with the project's migrations, fills it by COPY with a realistic
population (bench/inventory_load.py says how it is shaped), then times each query through the real
code path: InventoryStore.records / .count on the project's Database (asyncpg, as the CLI opens
it), records built in Python included. Each query runs twice to warm up, then --repeat times;
the table gives median and p95 in ms and the rows returned. --explain prints PostgreSQL's
EXPLAIN (ANALYZE, BUFFERS) of the very statement the store sends. The load (rows/s), the index
build and the table and index sizes are reported too. The aim is judged on p95.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import psycopg  # noqa: E402
from inventory_load import domain, load  # noqa: E402
from sqlalchemy.ext.compiler import compiles  # noqa: E402
from sqlalchemy.sql import ClauseElement, Executable, Select  # noqa: E402
from sqlalchemy.sql.compiler import SQLCompiler  # noqa: E402

from ca.inventory import queries  # noqa: E402
from ca.inventory.model import InventoryFilter, Status  # noqa: E402
from ca.inventory.store import InventoryStore  # noqa: E402
from ca.store.db import Database  # noqa: E402
from ca.store.migrate import upgrade  # noqa: E402

SERVER = "postgresql://postgres@127.0.0.1:5432"
KEPT_DATABASE = "tetra_bench_inventory"
AIM_MS = 100.0
WARMUP = 2


class Explain(Executable, ClauseElement):
    """EXPLAIN (ANALYZE, BUFFERS) of a SELECT, compiled and bound exactly as the store sends it."""

    inherit_cache = False

    def __init__(self, query: Select[Any]) -> None:
        self.query = query


@compiles(Explain, "postgresql")
def _compile_explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return "EXPLAIN (ANALYZE, BUFFERS) " + compiler.process(element.query, **kw)


@dataclass(frozen=True)
class Query:
    label: str
    flt: InventoryFilter
    count: bool = False  # InventoryStore.count instead of .records

    def statement(self) -> Select[Any]:
        return queries.counted(self.flt) if self.count else queries.filtered(self.flt)

    def runner(self, store: InventoryStore) -> Callable[[], Awaitable[int]]:
        if self.count:
            return lambda: store.count(self.flt)

        async def records() -> int:
            return len(await store.records(self.flt))

        return records


def workload(now: dt.datetime, exact_name: str, owner: str) -> list[Query]:
    registered = exact_name.split(".", 1)[1]  # names are made as label.registered-domain
    expiring = InventoryFilter(status=Status.EXPIRING, now=now, expiring_days=30)
    return [
        Query(
            "1. expiring within 30 days, first page (1,000, by expiry)",
            InventoryFilter(status=Status.EXPIRING, now=now, expiring_days=30, order="expiry", limit=1000),
        ),
        Query(
            "1b. `tetra inventory list --expiring 30 --sort expiry` (expired too), first page",
            InventoryFilter(expiring_before=now + dt.timedelta(days=30), now=now, order="expiry", limit=1001),
        ),
        Query("2. expiring within 30 days, count", expiring, count=True),
        Query(
            "2b. ending within 30 days, not yet ended (as notices select), count",
            InventoryFilter(expiring_before=now + dt.timedelta(days=30), valid_at=now),
            count=True,
        ),
        Query(f"3. SAN, exact name ({exact_name})", InventoryFilter(name=exact_name)),
        Query(f"4a. SAN, registered domain, typical ({registered})", InventoryFilter(name=registered)),
        Query(f"4b. SAN, registered domain, largest ({domain(0)}), first page", InventoryFilter(name=domain(0))),
        Query(
            f"5. owner = {owner}, expiring within 90 days",
            InventoryFilter(owner=owner, status=Status.EXPIRING, now=now, expiring_days=90),
        ),
        Query("6. key size below 2048, first page", InventoryFilter(key_size_below=2048)),
    ]


@dataclass(frozen=True)
class Timing:
    label: str
    median_ms: float
    p95_ms: float
    rows: int


async def measure(store: InventoryStore, query: Query, repeat: int) -> Timing:
    run = query.runner(store)
    for _ in range(WARMUP):
        rows = await run()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        rows = await run()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[max(0, -(-95 * len(samples) // 100) - 1)]  # nearest rank
    return Timing(query.label, statistics.median(samples), p95, rows)


async def explain(db: Database, query: Query) -> str:
    plan = await db.read(lambda conn: [str(line) for line in conn.execute(Explain(query.statement())).scalars()])
    return "\n".join(plan)


def admin(sql: str) -> None:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)  # fixed statements, names made here


def loaded_rows(url: str) -> int:
    """Certificates already in a kept database (0 when it is missing or was never filled)."""
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            found = conn.execute("SELECT to_regclass('inventory') IS NOT NULL").fetchone()
            if not found or not found[0]:
                return 0
            row = conn.execute("SELECT count(*) FROM inventory").fetchone()
            return int(row[0]) if row else 0
    except psycopg.OperationalError:
        return 0


def sizes(url: str) -> list[str]:
    """Markdown rows: each loaded table (heap + TOAST) and each of its indexes, in MB."""
    sql = (
        "SELECT relname, pg_table_size(oid) FROM pg_class WHERE relname IN ('inventory', 'inventory_names') "
        "UNION ALL SELECT indexname, pg_relation_size(quote_ident(indexname)::regclass) FROM pg_indexes "
        "WHERE tablename IN ('inventory', 'inventory_names') ORDER BY 1"
    )
    with psycopg.connect(url) as conn:
        return [f"| {name} | {size / 2**20:,.1f} |" for name, size in conn.execute(sql).fetchall()]


def machine(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT current_setting('server_version'), current_setting('shared_buffers'), "
            "current_setting('work_mem'), current_setting('jit')"
        ).fetchone()
    assert row is not None
    version, buffers, work_mem, jit = row
    return (
        f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, PostgreSQL {version} "
        f"(shared_buffers {buffers}, work_mem {work_mem}, jit {jit}), asyncpg through ca.store.db.Database; "
        f"load average {os.getloadavg()[0]:.1f} at the start"
    )


def targets(url: str, certificates: int) -> tuple[str, str]:
    """What the searches look for, read from the data so that each finds something at any size:
    a host name of the certificate in the middle (its longest name, so neither the bare domain nor
    a wildcard; its registered domain is the typical one) and the owner of the next certificate
    to expire."""
    with psycopg.connect(url) as conn:
        name = conn.execute(
            "SELECT name FROM inventory_names WHERE inventory_id = %s ORDER BY length(name) DESC, name LIMIT 1",
            (certificates // 2,),
        ).fetchone()
        owner = conn.execute(
            "SELECT owner FROM inventory WHERE owner IS NOT NULL AND revoked_at IS NULL AND not_after > now() "
            "ORDER BY not_after LIMIT 1"
        ).fetchone()
    if not name or not owner:
        raise SystemExit("the database is not a loaded inventory (no name or no owner to search for)")
    return str(name[0]), str(owner[0])


async def run(args: argparse.Namespace, url: str) -> list[str]:
    now = dt.datetime.now(dt.UTC)
    lines = ["# Inventory queries", "", machine(url), ""]
    present = loaded_rows(url)
    if present and args.keep:
        lines.append(f"Reused the kept database `{KEPT_DATABASE}`: {present:,} certificates (load not timed).")
        certificates = present
    else:
        print(f"migrating and loading {args.certificates:,} certificates", file=sys.stderr)
        upgrade(url)
        times = load(url, args.certificates, now, args.seed)
        certificates = args.certificates
        lines += [
            f"Loaded {certificates:,} certificates and {times.names:,} names by COPY in {times.copy_seconds:.1f} s "
            f"({(certificates + times.names) / times.copy_seconds:,.0f} rows/s, "
            f"{certificates / times.copy_seconds:,.0f} certificates/s); secondary indexes rebuilt in "
            f"{times.index_seconds:.1f} s; VACUUM ANALYZE {times.analyze_seconds:.1f} s.",
        ]
    lines += [
        "The DER column holds 3 real certificates reused (the queries never read it); no certificate is in the "
        "CA's ledger, so the ledger join finds nothing.",
        "",
        f"Each query: {WARMUP} warm-up runs, then {args.repeat} timed, through InventoryStore (records built). "
        f"Aim: p95 under {AIM_MS:.0f} ms.",
        "",
        "| query | median ms | p95 ms | rows | aim |",
        "|---|---:|---:|---:|---|",
    ]
    db = Database(url)
    store = InventoryStore(db)
    plans = []
    try:
        for query in workload(now, *targets(url, certificates)):
            timing = await measure(store, query, args.repeat)
            verdict = "met" if timing.p95_ms < AIM_MS else "MISSED"
            print(f"{timing.label}: median {timing.median_ms:.1f} ms, p95 {timing.p95_ms:.1f} ms", file=sys.stderr)
            lines.append(
                f"| {timing.label} | {timing.median_ms:.1f} | {timing.p95_ms:.1f} | {timing.rows:,} | {verdict} |"
            )
            if args.explain:
                plans += ["", f"## {query.label}", "", "```", await explain(db, query), "```"]
    finally:
        await db.close()
    return [*lines, "", "| relation | MB |", "|---|---:|", *sizes(url), *plans]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--certificates", type=int, default=1_000_000, help="certificates to load (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per query after the warm-up (default 20)")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN (ANALYZE, BUFFERS) of each query")
    parser.add_argument("--keep", action="store_true", help=f"keep the database ({KEPT_DATABASE}) and reuse it")
    parser.add_argument("--seed", type=int, default=15, help="random seed of the population (default 15)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "inventory.md")
    args = parser.parse_args()
    if args.certificates < 2 or args.repeat < 1:
        parser.error("--certificates must be at least 2 and --repeat at least 1")
    name = KEPT_DATABASE if args.keep else f"tetra_bench_inventory_{os.getpid()}"
    url = f"{SERVER}/{name}"
    try:
        if not (args.keep and loaded_rows(url)):
            admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        raise SystemExit(f"PostgreSQL at {SERVER} is not reachable: {exc}") from None
    try:
        lines = asyncio.run(run(args, url))
    finally:
        if not args.keep:
            admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    record = "\n".join(lines) + "\n"
    print(record)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
