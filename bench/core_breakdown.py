"""Per-certificate CPU budget of a benchmark row (bench_core.py --breakdown).

Wraps the synchronous, CPU-only steps of the issuance path with timers (about a
microsecond of overhead per call) and reads CPU clocks around the measured window:
the event-loop thread, the whole benchmark process (all threads: database worker
threads, the token thread) and the PostgreSQL server processes. What the timers do
not cover on the event-loop thread is the store (SQLAlchemy, the driver, the group
committer), asyncio and the issuer's own glue.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TIMERS: dict[str, list[float]] = {}  # name -> [seconds, calls]


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    slot = TIMERS.setdefault(name, [0.0, 0])
    clock = time.perf_counter

    def wrapper(*args: Any, **kw: Any) -> Any:
        t = clock()
        try:
            return fn(*args, **kw)
        finally:
            slot[0] += clock() - t
            slot[1] += 1

    wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
    return wrapper


def install() -> None:
    import ca.audit as audit
    import ca.issuer as issuer
    import ca.service as service
    import ca.store.db as db

    service.CertificateAuthority.decide = _timed(  # type: ignore[method-assign]
        "policy: decide + build_template",
        service.CertificateAuthority.decide,
    )
    issuer.Issuer.lint_certificate = _timed(  # type: ignore[method-assign]
        "crypto: TBS twin: builder + placeholder/throwaway sign",
        issuer.Issuer.lint_certificate,
    )
    # The issuer's own names (imported from ca.sigalg), so only certificate signatures are timed.
    issuer.sign_bytes = _timed("crypto: real signature", issuer.sign_bytes)  # type: ignore[attr-defined]
    issuer.verify_bytes = _timed("crypto: verify (CORE-11)", issuer.verify_bytes)  # type: ignore[attr-defined]
    issuer.assemble_certificate = _timed(  # type: ignore[attr-defined]
        "crypto: assemble + parse signed cert",
        issuer.assemble_certificate,  # type: ignore[attr-defined]
    )
    audit.event_hash = _timed("audit: event hash", audit.event_hash)
    db.append_events = _timed(  # type: ignore[attr-defined]
        "audit: append_events (incl. its SQL)",
        db.append_events,  # type: ignore[attr-defined]
    )


def _pg_cpu() -> float:
    """utime + stime of every postgres process, in seconds (needs /proc access)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name.startswith("postgres"):
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
    return total / tick


class Window:
    def __init__(self) -> None:
        self.start: dict[str, float] = {}
        self.stop_: dict[str, float] = {}
        self.timers0: dict[str, tuple[float, int]] = {}
        self.timers1: dict[str, tuple[float, int]] = {}

    def _clocks(self) -> dict[str, float]:
        return {
            "wall": time.perf_counter(),
            "loop thread CPU": time.thread_time(),
            "process CPU (all threads)": time.process_time(),
            "PostgreSQL server CPU": _pg_cpu(),
        }

    def open(self) -> None:
        self.timers0 = {k: (v[0], int(v[1])) for k, v in TIMERS.items()}
        self.start = self._clocks()

    def close(self) -> None:
        self.stop_ = self._clocks()
        self.timers1 = {k: (v[0], int(v[1])) for k, v in TIMERS.items()}

    def report(self, certificates: int) -> str:
        if not self.stop_ or not certificates:
            return "(no breakdown)"
        d = {k: self.stop_[k] - self.start[k] for k in self.start}
        per = 1e6 / certificates
        lines = [f"per certificate ({certificates} in {d['wall']:.2f} s; µs of CPU per certificate):"]
        for k in ("loop thread CPU", "process CPU (all threads)", "PostgreSQL server CPU"):
            lines.append(f"  {k:<42} {d[k] * per:8.1f}")
        lines.append("  of which timed steps (wall time inside them):")
        covered = 0.0
        for name, (secs, calls) in sorted(self.timers1.items()):
            s0, c0 = self.timers0.get(name, (0.0, 0))
            dt, dc = secs - s0, calls - c0
            if name.startswith("audit: event hash"):
                label = f"    {name} ({dc / certificates:.1f}/cert, inside append_events)"
            else:
                label = f"    {name} ({dc / certificates:.1f}/cert)"
                if not name.startswith("audit: append_events"):
                    covered += dt
            lines.append(f"{label:<60} {dt * per:8.1f}")
        rest = (d["loop thread CPU"] - covered) * per
        lines.append(f"  {'loop thread CPU not in crypto/policy steps':<58} {rest:8.1f}")
        return "\n".join(lines)
