"""Database access: the only module that knows how SQL is executed.

Repositories hand in plain synchronous functions of a SQLAlchemy `Connection`;
this module runs them either through SQLAlchemy's asyncio extension (aiosqlite,
asyncpg: mode "async") or on a pool of worker threads with synchronous drivers
(pysqlite, psycopg: mode "thread"). Both are kept because the issuance benchmark
decides between them (see bench/README.md); the default is the faster one.

Writes that many concurrent requests make (issuance intent and result) go
through a group committer: requests that arrive while a commit is in flight
share the next transaction, so one durable commit serves many certificates.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import threading
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

from sqlalchemy import Select, event, text
from sqlalchemy.engine import Connection, Engine, Row, create_engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import Executable, Insert

from ca.audit import AuditEvent, append_events
from ca.clock import Clock, SystemClock
from ca.errors import RejectedValue, StoreUnavailable
from ca.store.driver_errors import describe, is_conflict, rejects_value

T = TypeVar("T")
U = TypeVar("U")
log = logging.getLogger("tetra.store")

MODES = ("auto", "async", "thread")
# Measured by bench/bench_core.py: asyncpg beats psycopg-in-threads on PostgreSQL; pysqlite in
# threads beats aiosqlite (which hops to its own thread for every call) on SQLite.
_AUTO_MODE = {"postgresql": "async", "sqlite": "thread"}
_DRIVERS = {
    ("sqlite", "async"): "sqlite+aiosqlite",
    ("sqlite", "thread"): "sqlite+pysqlite",
    ("postgresql", "async"): "postgresql+asyncpg",
    ("postgresql", "thread"): "postgresql+psycopg",
}


class Slot(Generic[T]):
    """A value a batched statement produces at flush time (an inserted row's id)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: T | None = None

    def get(self) -> T:
        assert self.value is not None, "slot read before its batch was flushed"
        return self.value


@dataclass
class Tx:
    """One write transaction: the connection, batched statements, and audit events to chain.

    Writers that share a group commit add rows to the same batched statements,
    so N certificates cost one multi-row INSERT and one executemany UPDATE, not N of each.
    """

    conn: Connection
    events: list[AuditEvent] = field(default_factory=list)
    _inserts: dict[int, tuple[Insert, list[dict[str, Any]], list[Slot[int]]]] = field(default_factory=dict)
    _many: dict[int, tuple[Executable, list[dict[str, Any]]]] = field(default_factory=dict)

    def audit(self, event: AuditEvent) -> None:
        self.events.append(event)

    def insert_returning_id(self, statement: Insert, params: dict[str, Any]) -> Slot[int]:
        """Queue a row for `statement` (an INSERT ... RETURNING id, sort_by_parameter_order)."""
        slot: Slot[int] = Slot()
        entry = self._inserts.setdefault(id(statement), (statement, [], []))
        entry[1].append(params)
        entry[2].append(slot)
        return slot

    def execute_many(self, statement: Executable, params: dict[str, Any]) -> None:
        """Queue one parameter set for `statement`; all sets run as one executemany."""
        self._many.setdefault(id(statement), (statement, []))[1].append(params)

    def flush(self) -> None:
        for statement, rows, slots in self._inserts.values():
            ids = self.conn.execute(statement, rows).scalars().all()
            for slot, row_id in zip(slots, ids, strict=True):
                slot.value = int(row_id)
        for many_statement, many_rows in self._many.values():
            self.conn.execute(many_statement, many_rows)
        self._inserts.clear()
        self._many.clear()


def first_record(
    conn: Connection,
    statement: Executable,
    record: Callable[[Row[Any]], T],
    params: Mapping[str, Any] | None = None,
) -> T | None:
    """The first row ``statement`` finds, as a record, or None when there is none: the lookup by
    key (an id, a serial, a key id) every repository and protocol store makes, written once.
    Runs inside a transaction the caller already holds."""
    row = conn.execute(statement, params).first()
    return record(row) if row is not None else None


def resolve(value: Any) -> Any:
    """Replace flushed slots in a writer's result by their values."""
    if isinstance(value, Slot):
        return value.get()
    if isinstance(value, list):
        return [resolve(v) for v in value]
    return value


def driver_url(url: str, mode: str) -> str:
    """'postgresql://u@h/db' -> 'postgresql+asyncpg://u@h/db' for the chosen mode."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    mode = _AUTO_MODE.get(backend, "async") if mode == "auto" else mode
    try:
        driver = _DRIVERS[(backend, mode)]
    except KeyError:
        raise StoreUnavailable(
            f"database URL {parsed.render_as_string(hide_password=True)}: "
            f"unsupported backend {backend!r} (sqlite or postgresql)"
        ) from None
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def _sqlite_setup(engine: Engine) -> None:
    """WAL with synchronous=FULL (durable commits), and BEGIN IMMEDIATE for writes so two
    processes never deadlock upgrading read locks."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=15000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("tetra_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Database:
    """Async facade over one engine. Every failure to reach or use the database becomes
    StoreUnavailable, except integrity errors, which callers handle (serial collisions)."""

    def __init__(
        self,
        url: str,
        *,
        mode: str = "auto",
        pool_size: int = 10,
        timeout: float = 15.0,
        max_batch: int = 64,
        clock: Clock | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"database mode {mode!r} is not one of {MODES}")
        self.url = url
        self.backend = make_url(url).get_backend_name()
        mode = _AUTO_MODE.get(self.backend, "async") if mode == "auto" else mode
        self.mode = mode
        self.timeout = timeout
        self.clock = clock or SystemClock()
        full = driver_url(url, mode)
        # No pre-ping: it costs a round trip per transaction, and a dead connection
        # already surfaces as StoreUnavailable from the first statement.
        # hide_parameters: a failed statement's message (logged, chained into StoreUnavailable)
        # never shows its values, which may be secrets such as a new EAB HMAC key (SEC-05).
        kwargs: dict[str, Any] = {"pool_pre_ping": False, "hide_parameters": True}
        if self.backend == "postgresql":
            kwargs.update(pool_size=pool_size, max_overflow=pool_size)
            if mode == "async":
                kwargs["connect_args"] = {"timeout": 5, "command_timeout": timeout}
            else:
                kwargs["connect_args"] = {
                    "connect_timeout": 5,
                    "options": f"-c statement_timeout={int(timeout * 1000)}",
                }
        else:
            kwargs["connect_args"] = {"timeout": 15}
            if make_url(url).database in (None, "", ":memory:"):
                kwargs["poolclass"] = NullPool
            else:
                kwargs.update(pool_size=pool_size, max_overflow=0)
                if mode == "thread":
                    kwargs["connect_args"]["check_same_thread"] = False
        self._async: AsyncEngine | None = None
        self._sync: Engine | None = None
        self._threads: concurrent.futures.ThreadPoolExecutor | None = None
        if mode == "async":
            self._async = create_async_engine(full, **kwargs)
            self.engine = self._async.sync_engine
        else:
            self._sync = create_engine(full, **kwargs)
            self.engine = self._sync
            self._threads = concurrent.futures.ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="tetra-db")
        if self.backend == "sqlite":
            _sqlite_setup(self.engine)
        self.committer = GroupCommitter(self, max_batch)

    # -- running work -----------------------------------------------------------------
    async def _run(self, fn: Callable[[Connection], T], write: bool) -> T:
        abandoned = threading.Event()  # the caller stopped waiting: never commit after that (ST-06)

        def in_transaction(conn: Connection) -> T:
            if write:
                conn = conn.execution_options(tetra_write=True)
            with conn.begin():
                try:
                    result = fn(conn)
                except DBAPIError as exc:
                    if exc.connection_invalidated:
                        raise _LostBeforeCommit() from exc
                    raise
                if abandoned.is_set():
                    raise _Abandoned()  # rolls back: the caller was already told "try later"
                return result

        async def attempts() -> T:
            try:
                return await self._once(in_transaction, abandoned)
            except _LostBeforeCommit as lost:
                # ST-05: a pooled connection the server closed (restart, failover, a killed
                # backend) failed before COMMIT, so the transaction did nothing: once more
                # on a new connection (SQLAlchemy has dropped the stale ones).
                log.info("database connection lost (%s); retrying on a new one", describe(lost.__cause__ or lost))
                return await self._once(in_transaction, abandoned)

        try:
            return await self._within_timeout(attempts(), abandoned)
        except IntegrityError:
            raise
        except _LostBeforeCommit as exc:
            cause = exc.__cause__ or exc
            log.warning("database error: %s", describe(cause))
            raise StoreUnavailable(f"database unavailable: {describe(cause)}") from cause
        except (TimeoutError, SQLAlchemyError, OSError, ConnectionError, OverflowError, UnicodeError) as exc:
            if rejects_value(exc):
                log.info("database refused a value: %s", describe(exc))
                raise RejectedValue() from exc
            log.warning("database error: %s", describe(exc))
            log.debug("database error detail", exc_info=exc)
            raise StoreUnavailable(f"database unavailable: {describe(exc)}") from exc

    async def _once(self, in_transaction: Callable[[Connection], T], abandoned: threading.Event) -> T:
        """One transaction on a pooled connection, on the event loop (async) or a worker thread."""
        if self._async is not None:
            async with self._async.connect() as aconn:
                return await aconn.run_sync(in_transaction)

        def in_thread() -> T:
            if abandoned.is_set():
                raise _Abandoned()  # queued behind threads stuck on a hung server; its caller is gone
            assert self._sync is not None
            with self._sync.connect() as conn:
                return in_transaction(conn)

        return await asyncio.get_running_loop().run_in_executor(self._threads, in_thread)

    async def _within_timeout(self, work: Coroutine[Any, Any, T], abandoned: threading.Event) -> T:
        """Await `work` for at most `timeout` seconds, clean-up included (ST-06).

        Threads: a worker stuck on a hung server cannot be interrupted, so on expiry the call is
        marked abandoned and the worker rolls back instead of committing when the server wakes.
        asyncio: cancelling waits for SQLAlchemy to close the connection, which it gives 2 s
        more on a server that stopped answering; so the work runs as a task of its own and the
        caller gets its TimeoutError at the deadline while that clean-up finishes behind it.
        """
        if self._async is None:
            try:
                async with asyncio.timeout(self.timeout):
                    return await work
            except BaseException:
                abandoned.set()
                raise
        task = asyncio.ensure_future(work)
        try:
            done, _ = await asyncio.wait((task,), timeout=self.timeout)
        except BaseException:  # the caller was cancelled
            task.cancel()
            raise
        if not done:
            task.cancel()
            task.add_done_callback(_discard_outcome)
            raise TimeoutError
        return task.result()

    async def read(self, fn: Callable[[Connection], T]) -> T:
        return await self._run(fn, write=False)

    async def read_first(self, query: Select[Any], record: Callable[[Row[Any]], T]) -> T | None:
        """The first row of ``query`` made into a record by ``record``, or None: the lookup by
        key (an id, a serial, a key id) that every repository makes, written once."""

        return await self.read(lambda conn: first_record(conn, query, record))

    async def write(self, fn: Callable[[Tx], T]) -> T:
        """One transaction of its own; its audit events are chained before commit. `fn` may run
        more than once (after a deadlock abort), so it must act only through the transaction."""

        def body(conn: Connection) -> T:
            tx = Tx(conn)
            result = fn(tx)
            tx.flush()
            append_events(conn, tx.events, self.clock.now())
            return resolve(result)  # type: ignore[no-any-return]

        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                return await self._run(body, write=True)
            except StoreUnavailable as exc:
                # PostgreSQL broke a deadlock (or a serialization conflict) by aborting us: the
                # transaction did nothing, so running it again is safe and almost always works.
                if attempt == CONFLICT_ATTEMPTS or not is_conflict(exc.__cause__):
                    raise
                log.info("database conflict (%s), attempt %d: retrying", describe(exc), attempt)
                await asyncio.sleep(random.uniform(0, 0.02 * attempt))
        raise AssertionError("unreachable")

    @overload
    async def write_grouped(self, fn: Callable[[Tx], Slot[U]]) -> U: ...
    @overload
    async def write_grouped(self, fn: Callable[[Tx], T]) -> T: ...

    async def write_grouped(self, fn: Callable[[Tx], Any]) -> Any:
        """Like write(), but may share a transaction (and its commit) with concurrent writers.
        A writer that returns a Slot gets the slot's value (say, the id of the row it inserted)."""
        return await self.committer.submit(fn)

    async def ping(self) -> None:
        await self.read(lambda conn: conn.execute(text("SELECT 1")).scalar_one())

    async def close(self) -> None:
        if self._async is not None:
            await self._async.dispose()
        if self._sync is not None:
            self._sync.dispose()
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)


class _LostBeforeCommit(Exception):
    """The connection broke while the transaction ran, before COMMIT: nothing was written."""


class _Abandoned(Exception):
    """The caller of this transaction timed out: it is rolled back, never committed later."""


def _discard_outcome(task: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of work nobody waits for any more (no 'never retrieved' warning)."""
    if not task.cancelled():
        task.exception()


CONFLICT_ATTEMPTS = 4
Queued = tuple[Callable[[Tx], Any], asyncio.Future[Any]]


class GroupCommitter:
    """Runs the writes queued while a commit is in flight as one transaction.

    One request's fault stays its own. A shared transaction that fails for any reason but an
    outage (one writer passed a value the store refuses, hit a unique constraint, or raised) is
    split in halves and each half committed on its own, down to single writers: only the
    guilty one fails, with its own error (RejectedValue is a 4xx), and its neighbours commit.
    Halving costs about 2·log2(batch) transactions per guilty writer instead of one per member.
    An outage (StoreUnavailable: unreachable, timed out) fails the whole batch at once: every
    member would meet it again, and retrying them one by one would only multiply the wait.
    """

    def __init__(self, db: Database, max_batch: int) -> None:
        self._db = db
        self._max_batch = max(1, max_batch)
        self._queue: list[Queued] = []
        self._draining = False

    async def submit(self, fn: Callable[[Tx], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((fn, future))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._commit(batch)
        finally:
            self._draining = False

    async def _commit(self, batch: list[Queued]) -> None:
        if len(batch) == 1:
            fn, future = batch[0]
            await self._settle(fn, future)
            return

        def all_of(tx: Tx) -> list[Any]:
            return [fn(tx) for fn, _ in batch]

        try:
            results = await self._db.write(all_of)
        except StoreUnavailable as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except Exception as exc:
            log.info("a group commit of %d writes failed (%s); committing its halves apart", len(batch), describe(exc))
            middle = len(batch) // 2
            await self._commit(batch[:middle])
            await self._commit(batch[middle:])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _settle(self, fn: Callable[[Tx], Any], future: asyncio.Future[Any]) -> None:
        try:
            result = await self._db.write(fn)
        except BaseException as exc:  # handed to the waiting writer
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)
