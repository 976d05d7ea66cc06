"""`tetra db copy`: move a CA's whole database to another one (SQLite to PostgreSQL, or any to any).

Why it is built this way: a CA's database is its memory of every serial it ever signed, so a move
must be all or nothing and provably faithful. The source is read in one read-only transaction (one
consistent snapshot even if a server still runs on it); the destination must hold the current
schema and no rows, and is written in one transaction that commits only after every row has been
read back and compared with the source and the audit chain verifies there (ca/store/copy_check.py).
Any failure rolls everything back, leaving the destination as it was.

ca/ never imports a protocol, so the caller passes the metadata with every protocol's tables
declared on it (the CLI imports protocols.registry first); a source table the metadata does not
know is refused rather than silently left behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, Table, create_engine, event, func, inspect, literal, select, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from ca.errors import CAError, CopyRefused, StoreUnavailable
from ca.store.copy_check import in_key_order, verify_copy
from ca.store.db import driver_url
from ca.store.driver_errors import describe
from ca.store.migrate import head_revision, stored_revision, upgrade

BATCH_ROWS = 1000
_ALEMBIC = "alembic_version"  # written by the migrations on each side, never copied


@dataclass(frozen=True)
class CopyReport:
    source: str  # URLs with the password masked
    destination: str
    revision: str
    schema_created: bool  # the destination was empty of tables and the migrations ran first
    rows: dict[str, int]  # table name -> rows copied (and verified)
    audit_events: int


def masked(url: str) -> str:
    """The URL as it may be printed: the password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a database URL)"


def copy_database(source_url: str, destination_url: str, metadata: MetaData, batch: int = BATCH_ROWS) -> CopyReport:
    src_shown, dst_shown = masked(source_url), masked(destination_url)
    for shown, url in ((src_shown, source_url), (dst_shown, destination_url)):
        _check_url(shown, url)
    source_file = make_url(source_url).database
    if make_url(source_url).get_backend_name() == "sqlite" and source_file and not Path(source_file).is_file():
        raise CopyRefused(f"source {src_shown}: no such SQLite file {source_file}")
    if make_url(source_url) == make_url(destination_url):
        raise CopyRefused(f"the source and the destination are the same database ({src_shown})")
    head = head_revision()
    try:
        source_revision = stored_revision(source_url)
        if source_revision != head:
            raise CopyRefused(
                f"source {src_shown}: schema is at {source_revision or 'nothing'}, this version needs {head}: "
                "run `tetra db upgrade` on it first"
            )
        created = _prepare_destination(destination_url, dst_shown, head)
        with _engine(source_url) as src_engine, _engine(destination_url) as dst_engine:
            return _copy(src_engine, dst_engine, metadata, batch, src_shown, dst_shown, head, created)
    except CAError:
        raise
    except (SQLAlchemyError, OSError) as exc:
        raise StoreUnavailable(f"copy failed, nothing was written: {describe(exc)}") from exc


def _check_url(shown: str, url: str) -> None:
    try:
        driver_url(url, "thread")
    except ArgumentError:
        given = url if "@" not in url else "(hidden: it may hold a password)"
        raise CopyRefused(f"not a database URL: {given!r} (sqlite:///FILE or postgresql://USER@HOST/DB)") from None
    except StoreUnavailable as exc:
        raise CopyRefused(exc.detail) from None
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not parsed.database:
        raise CopyRefused(f"{shown}: name the SQLite file (sqlite:///path/to/tetra.db)")


def _prepare_destination(url: str, shown: str, head: str) -> bool:
    """Run the migrations on a destination with no tables at all; refuse one at another revision."""
    with _engine(url) as engine, engine.connect() as conn:
        tables = inspect(conn).get_table_names()
    if not tables:
        upgrade(url)
        return True
    revision = stored_revision(url)
    if revision != head:
        raise CopyRefused(
            f"destination {shown}: schema is at {revision or 'nothing'}, this version needs {head}: "
            "run `tetra db upgrade` on it, or give an empty database"
        )
    return False


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
    """A synchronous engine; on SQLite, transactions are begun explicitly (pysqlite would otherwise
    read outside any transaction, and the source would not be one snapshot)."""
    connect_args: dict[str, Any] = {"timeout": 15} if url.startswith("sqlite") else {"connect_timeout": 5}
    engine = create_engine(
        driver_url(url, "thread"), poolclass=NullPool, hide_parameters=True, connect_args=connect_args
    )
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            dbapi_conn.execute("PRAGMA foreign_keys=ON")

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("tetra_write") else "BEGIN")

    try:
        yield engine
    finally:
        engine.dispose()


def _copy(
    src_engine: Engine,
    dst_engine: Engine,
    metadata: MetaData,
    batch: int,
    src_shown: str,
    dst_shown: str,
    head: str,
    created: bool,
) -> CopyReport:
    tables = metadata.sorted_tables
    with _read_only(src_engine) as src, dst_engine.connect() as dst_conn:
        _refuse_unknown_tables(src, metadata, src_shown)
        with dst_conn.execution_options(tetra_write=True).begin():
            _refuse_rows(dst_conn, tables, dst_shown)
            rows = {table.name: _copy_table(src, dst_conn, table, batch) for table in tables}
            if dst_conn.dialect.name == "postgresql":
                reset_sequences(dst_conn, tables)
            audit_events = verify_copy(src, dst_conn, tables, rows, batch)
            # Leaving the `with` commits; an exception anywhere above rolls the lot back.
    return CopyReport(src_shown, dst_shown, head, created, rows, audit_events)


@contextmanager
def _read_only(engine: Engine) -> Iterator[Connection]:
    """One read-only transaction: a single snapshot of the source, which is never written."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA query_only=ON")
            yield conn


def _refuse_unknown_tables(src: Connection, metadata: MetaData, shown: str) -> None:
    unknown = sorted(set(inspect(src).get_table_names()) - set(metadata.tables) - {_ALEMBIC})
    if unknown:
        raise CopyRefused(f"source {shown} has tables this version does not know: {', '.join(unknown)}")


def _refuse_rows(dst: Connection, tables: list[Table], shown: str) -> None:
    occupied = _first_with_rows(dst, tables)
    if occupied is not None:
        raise CopyRefused(f"destination {shown} is not empty (table {occupied} has rows): give an empty database")


def _first_with_rows(conn: Connection, tables: list[Table]) -> str | None:
    for table in tables:
        if conn.execute(select(literal(1)).select_from(table).limit(1)).first() is not None:
            return table.name
    return None


def table_with_rows(url: str, metadata: MetaData) -> str | None:
    """The first of Tetra's tables holding a row in that database, or None (no tables, or all
    empty): `tetra init` will not put a second CA into a database that holds one."""
    try:
        with _engine(url) as engine, engine.connect() as conn:
            present = set(inspect(conn).get_table_names())
            return _first_with_rows(conn, [t for t in metadata.sorted_tables if t.name in present])
    except SQLAlchemyError as exc:
        raise StoreUnavailable(f"database {masked(url)}: {describe(exc)}") from exc


def _copy_table(src: Connection, dst: Connection, table: Table, batch: int) -> int:
    count = 0
    result = src.execution_options(yield_per=batch).execute(in_key_order(table))
    for chunk in result.partitions(batch):
        dst.execute(table.insert(), [dict(row._mapping) for row in chunk])
        count += len(chunk)
    return count


def reset_sequences(dst: Connection, tables: list[Table]) -> None:
    """Rows were inserted with their ids, which does not move PostgreSQL's sequences: set each to
    the highest id copied, so the next row the server inserts gets a fresh one."""
    for table in tables:
        for column in table.primary_key.columns:
            sequence = dst.execute(select(func.pg_get_serial_sequence(table.name, column.name))).scalar()
            if sequence is None:
                continue
            quote = dst.dialect.identifier_preparer.quote
            col, name = quote(column.name), quote(table.name)
            dst.execute(
                text(f"SELECT setval(:seq, COALESCE(MAX({col}), 1), MAX({col}) IS NOT NULL) FROM {name}"),
                {"seq": sequence},
            )
