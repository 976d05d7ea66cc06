"""Prototypes of core changes, applied by monkeypatching inside the benchmark process only
(`bench_core.py --prototype a,b,...`). They measure what a change to the core would gain;
they are not the change. Each names the core function it stands in for.

Already adopted by the core after measuring here (and so removed): sql-params (precompiled
statements), batch (one multi-row INSERT and one executemany UPDATE per group commit),
no-pre-ping, tbs-capture (placeholder-signature TBS), verify-once, builder-ctor.

uvloop       server start-up: run the event loop on uvloop (needs `pip install uvloop`).
inflight-2   ca/store/db.py GroupCommitter.submit/_drain: let a second shared transaction start
             while one is in flight, so its statements overlap the first one's commit; the audit
             head row lock still orders the two.
gc           server start-up: gc.freeze() after loading, and a young-generation threshold of
             50,000 allocations instead of 700 (issuance allocates many short-lived objects).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519

APPLIED: list[str] = []


# -- uvloop ------------------------------------------------------------------------------------


def _uvloop() -> None:
    import asyncio

    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# -- inflight-2 --------------------------------------------------------------------------------


def _inflight2() -> None:
    import asyncio

    import ca.store.db as db

    def submit(self: Any, fn: Callable[[Any], Any]) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((fn, future))
        active = getattr(self, "bench_active", 0)
        # A second transaction starts only when the first is in flight and work is waiting.
        if active == 0 or (active == 1 and len(self._queue) >= 4):
            self.bench_active = active + 1
            task = loop.create_task(self._drain())
            self.bench_tasks = getattr(self, "bench_tasks", set())
            self.bench_tasks.add(task)
            task.add_done_callback(self.bench_tasks.discard)
        return future

    async def _drain(self: Any) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._commit(batch)
        finally:
            self.bench_active -= 1

    db.GroupCommitter.submit = submit  # type: ignore[method-assign]
    db.GroupCommitter._drain = _drain  # type: ignore[method-assign]


# -- gc ----------------------------------------------------------------------------------------


def _gc() -> None:
    import gc

    gc.collect()
    gc.freeze()  # start-up objects (profiles, keys, SQLAlchemy metadata) never scanned again
    gc.set_threshold(50_000, 20, 20)


PROTOTYPES: dict[str, Callable[[], None]] = {
    "uvloop": _uvloop,
    "gc": _gc,
    "inflight-2": _inflight2,
}


def apply(names: list[str]) -> None:
    for name in names:
        if name not in PROTOTYPES:
            raise SystemExit(f"unknown prototype {name!r} (known: {', '.join(PROTOTYPES)})")
        if name not in APPLIED:
            PROTOTYPES[name]()
            APPLIED.append(name)


_ = (x509, ed25519)
