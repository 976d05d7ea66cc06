"""The proof a database copy is faithful, run on the destination before its transaction commits:
every row of every table equal to the source's (same count, same values, in primary-key order),
and the audit hash chain verifying there as it does in the source. Kept apart from the copy
itself (ca/store/copy.py) so that what counts as "the same" is read in one place."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import zip_longest
from typing import Any

from sqlalchemy import Select, Table, select
from sqlalchemy.engine import Connection

from ca.audit import verify_chain
from ca.errors import CopyRefused


def verify_copy(src: Connection, dst: Connection, tables: list[Table], copied: dict[str, int], batch: int) -> int:
    """Raise CopyRefused at the first difference; return how many audit events verified."""
    source_chain = verify_chain(src, batch)
    if not source_chain.ok:
        raise CopyRefused(
            f"the source's audit chain does not verify ({source_chain.problems[0]}): see `tetra audit verify`"
        )
    for table in tables:
        _same_rows(src, dst, table, copied[table.name], batch)
    chain = verify_chain(dst, batch)
    if not chain.ok:
        raise CopyRefused(f"the copied audit chain does not verify: {chain.problems[0]}")
    if chain.events != source_chain.events:
        raise CopyRefused(f"audit log: {source_chain.events} events in the source, {chain.events} copied")
    return chain.events


def _same_rows(src: Connection, dst: Connection, table: Table, copied: int, batch: int) -> None:
    compared = 0
    for number, (theirs, ours) in enumerate(zip_longest(_rows(src, table, batch), _rows(dst, table, batch)), 1):
        if theirs is None or ours is None:
            side = "destination" if ours is None else "source"
            raise CopyRefused(f"table {table.name}: row {number} is missing in the {side}")
        if theirs != ours:
            column = next(c.name for c, a, b in zip(table.columns, theirs, ours, strict=True) if a != b)
            raise CopyRefused(f"table {table.name}: row {number} differs in column {column}")
        compared = number
    if compared != copied:
        raise CopyRefused(f"table {table.name}: {copied} rows copied, {compared} compared")


def in_key_order(table: Table) -> Select[Any]:
    """The table's rows in primary-key order: the order they are copied and compared in."""
    return select(table).order_by(*(table.primary_key.columns or table.columns))


def _rows(conn: Connection, table: Table, batch: int) -> Iterator[tuple[Any, ...]]:
    for row in conn.execution_options(yield_per=batch).execute(in_key_order(table)):
        yield tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
