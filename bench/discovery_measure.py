"""The in-process halves of the discovery benchmark, and its table: the probe alone
(scan_endpoints over the same endpoints the CLI is given, nothing recorded) and the file walk
alone (scan_paths), each checked for what it should have found, so a fast row that missed
endpoints or files is reported as failed rather than as fast.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import resource
import time
from collections.abc import Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path

from discovery_setup import FILE_MIX, PASSPHRASE

from ca.inventory.scans import LocationResult
from server.discovery.endpoint_scan import scan_endpoints
from server.discovery.file_scan import FileReport, scan_paths
from server.discovery.run import BATCH, FILE_CHUNK, endpoint_result, file_result
from server.discovery.targets import expand_targets
from server.discovery.tls_probe import EndpointReport
from server.discovery.trust_roots import system_roots

EXPECTED_PROTOCOLS = ("TLSv1.2", "TLSv1.3")


@dataclass
class Row:
    what: str
    items: int  # endpoints or files
    seconds: float
    scanner_cpu: float  # user + system
    scanner_system: float = 0.0  # of which in the kernel (loopback TCP is sent and received there)
    servers_cpu: float | None = None
    connections: int | None = None  # accepted by the listeners
    handshakes: int | None = None  # completed by the listeners
    failures: int = 0  # endpoints or files the scan should have found and did not
    note: str = ""

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0

    @property
    def per_cpu(self) -> float:
        return self.items / self.scanner_cpu if self.scanner_cpu else 0.0


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| row | items | seconds | items/s | connections/s | handshakes/s | scanner CPU s (system) "
        "| items/scanner CPU-s | listeners CPU s | missed | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        per_second = [
            f"{n / r.seconds:,.0f} ({n / r.items:.1f} each)" if n is not None and r.seconds and r.items else "-"
            for n in (r.connections, r.handshakes)
        ]
        servers = f"{r.servers_cpu:.2f}" if r.servers_cpu is not None else "-"
        items, rate, per_cpu = (f"{r.items:,}", f"**{r.rate:,.0f}**", f"{r.per_cpu:,.0f}") if r.items else ("-",) * 3
        lines.append(
            f"| {r.what} | {items} | {r.seconds:.2f} | {rate} | {per_second[0]} | {per_second[1]} "
            f"| {r.scanner_cpu:.2f} ({r.scanner_system:.2f}) | {per_cpu} | {servers} | {r.failures} | {r.note} |"
        )
    return "\n".join(lines)


def cpu_now() -> tuple[float, float]:
    """This process's (user + system, system) CPU seconds so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_stime


def probe_alone(
    addresses: Sequence[str],
    ports: Sequence[int],
    concurrency: int,
    timeout: float,
    loop: str,
    keep: list[EndpointReport] | None = None,
) -> tuple[float, tuple[float, float], int, str]:
    """scan_endpoints over every address x port on a fresh event loop (``loop``: asyncio or
    uvloop): wall seconds, this process's (CPU, system CPU) seconds, endpoints missed, a note.
    The reports are added to ``keep`` if given."""
    endpoints = expand_targets(addresses, ports, cap=len(addresses) * len(ports))
    trust = system_roots()

    async def scan() -> list[EndpointReport]:
        probes = scan_endpoints(
            endpoints, concurrency=concurrency, timeout=timeout, trust=trust, now=dt.datetime.now(dt.UTC)
        )
        async with aclosing(probes):
            return [report async for report in probes]

    cpu_started, started = cpu_now(), time.perf_counter()
    if loop == "uvloop":
        import uvloop

        reports = uvloop.run(scan())
    else:
        reports = asyncio.run(scan())
    seconds, cpu = time.perf_counter() - started, _since(cpu_started)
    if keep is not None:
        keep.extend(reports)
    missed = [r for r in reports if r.error is not None or r.protocols != EXPECTED_PROTOCOLS or len(r.chain) != 2]
    missed_count = len(missed) + len(endpoints) - len(reports)
    slowest = max((r.elapsed for r in reports), default=0.0)
    note = f"slowest endpoint {slowest:.2f} s"
    if missed:
        note += f"; first missed: {missed[0].error or missed[0].protocols}"
    return seconds, cpu, missed_count, note


def file_rows_alone(tree: Path, counts: dict[str, int] | None, keep: list[FileReport] | None = None) -> list[Row]:
    """scan_paths over the whole tree (its reports added to ``keep`` if given), then over each
    kind's folder (when ``counts`` is given)."""
    rows = [_walk("scan_paths alone, whole tree", [tree], counts, keep)]
    for kind in FILE_MIX if counts is not None else ():
        if counts[kind]:  # type: ignore[index]
            rows.append(_walk(f"scan_paths alone, {kind} only", [tree / kind], {kind: counts[kind]}))  # type: ignore[index]
    return rows


def _walk(what: str, paths: list[Path], counts: dict[str, int] | None, keep: list[FileReport] | None = None) -> Row:
    cpu_started, started = cpu_now(), time.perf_counter()
    reports = list(scan_paths(paths, passphrases=[PASSPHRASE]))
    seconds, (cpu, system) = time.perf_counter() - started, _since(cpu_started)
    if keep is not None:
        keep.extend(reports)
    read = sum(r.container is not None for r in reports)
    unread = len(reports) - read
    missed = 0
    if counts is not None:
        expected_read = sum(n for kind, n in counts.items() if not kind.startswith("decoy"))
        expected_unread = counts.get("decoy-named", 0)
        missed = abs(expected_read - read) + abs(expected_unread - unread)
    files = sum(counts.values()) if counts is not None else sum(1 for p in paths[0].rglob("*") if p.is_file())
    row = Row(what, files, seconds, cpu, system, failures=missed, note=f"{read} read, {unread} reported unread")
    if counts is not None:  # a timed row, not the profiled repeat
        print(table([row]).splitlines()[-1], flush=True)
    return row


def record_alone(config: Path, kind: str, results: Callable[[dt.datetime], list[LocationResult]]) -> Row:
    """What `tetra discover` does with results, alone: ``results(now)`` turned into inventory
    records (endpoint_result / file_result, timed with it) and written by ScanStore.record in the
    CLI's batches, into the demo CA the CLI rows used (so, as a repeat scan would)."""
    from server.wiring import build_ca, read_config

    async def run() -> tuple[float, tuple[float, float], int]:
        ca = await build_ca(read_config(config))
        try:
            scan_id = await ca.scans.start(kind, ["bench"], actor="bench", now=ca.clock.now())
            cpu_started, started = cpu_now(), time.perf_counter()
            made = results(ca.clock.now())
            batch = BATCH if kind == "network" else FILE_CHUNK
            for first in range(0, len(made), batch):
                await ca.scans.record(scan_id, made[first : first + batch], at=ca.clock.now())
            seconds, cpu = time.perf_counter() - started, _since(cpu_started)
            await ca.scans.finish(scan_id, status="done", summary={}, actor="bench", now=ca.clock.now())
            return seconds, cpu, len(made)
        finally:
            await ca.close()

    seconds, (cpu, system), count = asyncio.run(run())
    size = f"batches of {BATCH if kind == 'network' else FILE_CHUNK}"
    row = Row(f"ScanStore.record alone ({kind}, {size})", count, seconds, cpu, system, note="results made and recorded")
    print(table([row]).splitlines()[-1], flush=True)
    return row


def endpoint_results(reports: Sequence[EndpointReport]) -> Callable[[dt.datetime], list[LocationResult]]:
    return lambda now: [endpoint_result(r) for r in reports]


def file_results(reports: Sequence[FileReport]) -> Callable[[dt.datetime], list[LocationResult]]:
    return lambda now: [file_result(r, now) for r in reports]


def _since(started: tuple[float, float]) -> tuple[float, float]:
    total, system = cpu_now()
    return total - started[0], system - started[1]
