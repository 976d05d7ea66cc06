"""The one store module a protocol may import, for the protocol's own tables.

A protocol keeps its state (ACME accounts and orders, EST/SCEP/CMP transactions)
in tables of its own, declared on `Base` so that one Alembic history migrates the
core's tables and every protocol's together. It reads and writes them through the
`StateDatabase` the core hands it (`CoreApi.state`), in transactions it names:

- ``read(fn)``: ``fn(connection)`` in a read transaction;
- ``write(fn)``: ``fn(tx)`` in a write transaction of its own;
- ``write_grouped(fn)``: ``fn(tx)`` batched with other writers into one durable commit
  (for hot paths). A writer that fails, fails alone: the batch is split until only it does,
  and a value the store refuses reaches it as ``RejectedValue`` (a 4xx), never as an outage.

A write that must commit together with an issued certificate is not written here:
it is handed to ``CoreApi.enroll(..., on_issued=...)`` (see ca/interface.py).

What a protocol may join against in the core's tables is re-exported read-only
(``certificates``, with ``certificate_record`` to read a row); the core's other tables stay private to ca/.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar, overload

from sqlalchemy.engine import Connection

from ca.audit import AuditEvent
from ca.store.db import Slot, Tx
from ca.store.repositories import certificate_record
from ca.store.tables import Base, Id, UTCDateTime, certificates, rate_limits

T = TypeVar("T")
U = TypeVar("U")


class StateDatabase(Protocol):
    """Transactions over the shared database, as a protocol may run them."""

    async def read(self, fn: Callable[[Connection], T]) -> T: ...

    async def write(self, fn: Callable[[Tx], T]) -> T: ...

    @overload
    async def write_grouped(self, fn: Callable[[Tx], Slot[U]]) -> U: ...
    @overload
    async def write_grouped(self, fn: Callable[[Tx], T]) -> T: ...
    async def write_grouped(self, fn: Callable[[Tx], Any]) -> Any: ...


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
    "rate_limits",
]
