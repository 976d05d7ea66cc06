"""The one store module a protocol may import, for the protocol's own tables.

A protocol keeps its state (ACME accounts and orders, EST/SCEP/CMP transactions)
in tables of its own, declared on `Base` so that one Alembic history migrates the
core's tables and every protocol's together (``table_of`` gives the Core table of such a
class, to write SQL against). It reads and writes them through the
`StateDatabase` the core hands it (`CoreApi.state`), in transactions it names:

- ``read(fn)``: ``fn(connection)`` in a read transaction;
- ``read_first(query, record)``: the first row of a select made into a record, or None;
- ``write(fn)``: ``fn(tx)`` in a write transaction of its own;
- ``write_grouped(fn)``: ``fn(tx)`` batched with other writers into one durable commit
  (for hot paths). A writer that fails, fails alone: the batch is split until only it does,
  and a value the store refuses reaches it as ``RejectedValue`` (a 4xx), never as an outage.

A write that must commit together with an issued certificate is not written here:
it is handed to ``CoreApi.enroll(..., on_issued=...)`` (see ca/interface.py).

What a protocol may join against in the core's tables is re-exported read-only
(``certificates``, with ``certificate_record`` to read a row); the core's other tables stay private to ca/.

``first_record`` and ``read_record`` are the lookup by key every store has: one statement, its
first row turned into the store's frozen record, or None. ``record_from_row`` is that turning
for a record whose fields are named as its columns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any, Protocol, TypeVar, overload

from sqlalchemy import Select
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql import Executable

from ca.audit import AuditEvent
from ca.store.db import Slot, Tx, first_record
from ca.store.repositories import certificate_record
from ca.store.tables import Base, Id, UTCDateTime, certificates, rate_limits, table_of

T = TypeVar("T")
U = TypeVar("U")


class StateDatabase(Protocol):
    """Transactions over the shared database, as a protocol may run them."""

    async def read(self, fn: Callable[[Connection], T]) -> T: ...

    async def read_first(self, query: Select[Any], record: Callable[[Row[Any]], T]) -> T | None: ...

    async def write(self, fn: Callable[[Tx], T]) -> T: ...

    @overload
    async def write_grouped(self, fn: Callable[[Tx], Slot[U]]) -> U: ...
    @overload
    async def write_grouped(self, fn: Callable[[Tx], T]) -> T: ...
    async def write_grouped(self, fn: Callable[[Tx], Any]) -> Any: ...


_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


def _field_names(record: type[Any]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(record)
    if names is None:
        names = _FIELD_NAMES[record] = tuple(f.name for f in fields(record))
    return names


def record_from_row(record: type[T], row: Row[Any], *, prefix: str = "", **read: Callable[[Any], Any]) -> T:
    """A frozen dataclass record from the row's columns of the same names (``prefix`` + name, for a
    joined table's labelled columns). ``read`` turns a stored value into its field where they
    differ (JSON text, a flag); columns the record has no field for are left out."""
    m = row._mapping
    return record(**{n: read[n](m[prefix + n]) if n in read else m[prefix + n] for n in _field_names(record)})


async def read_record(
    db: StateDatabase,
    statement: Executable,
    record: Callable[[Row[Any]], T],
    params: Mapping[str, Any] | None = None,
) -> T | None:
    """`first_record` in a read transaction of its own."""
    return await db.read(lambda conn: first_record(conn, statement, record, params))


__all__ = [
    "AuditEvent",
    "Base",
    "Connection",
    "Id",
    "Slot",
    "StateDatabase",
    "Tx",
    "UTCDateTime",
    "certificate_record",
    "certificates",
    "first_record",
    "rate_limits",
    "read_record",
    "record_from_row",
    "table_of",
]
