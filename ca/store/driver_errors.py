"""What a database error means, whichever of the four drivers raised it (pysqlite, aiosqlite,
psycopg, asyncpg): an outage (StoreUnavailable, "try later"), a conflict worth running again
(a deadlock PostgreSQL broke), or a value the store refuses (RejectedValue, the request's own
fault). ca/store/db.py decides what to do; this module only reads the exceptions.
"""

from __future__ import annotations

import asyncio
import re

from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, ProgrammingError, StatementError

_CONFLICT_STATES = {"40P01", "40001"}  # deadlock_detected, serialization_failure


def _sqlstate(exc: BaseException | None) -> str | None:
    """The SQLSTATE of a PostgreSQL error (psycopg: sqlstate; asyncpg through SQLAlchemy: both)."""
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return state if isinstance(state, str) else None


def is_conflict(exc: BaseException | None) -> bool:
    return _sqlstate(exc) in _CONFLICT_STATES


# A driver that cannot send a value of that type (pysqlite, psycopg): their words, stable for years.
_BIND_FAILURES = ("Error binding parameter", "cannot adapt type")


def rejects_value(exc: BaseException) -> bool:
    """True if a statement failed on a value it was given (wrong type, too long, out of range, not
    text), not on the database. Running it again cannot help, and of the writers sharing a group
    commit only the one that passed the value is at fault (GroupCommitter). What each driver
    raises differs: PostgreSQL says SQLSTATE class 22 (data exception), through psycopg or
    asyncpg; pysqlite raises OverflowError or UnicodeEncodeError as they are, or a
    ProgrammingError about binding; SQLAlchemy's own type processing wraps a TypeError."""
    if isinstance(exc, OverflowError | UnicodeError):
        return True
    if not isinstance(exc, StatementError):
        return False
    if not isinstance(exc, DBAPIError):
        return isinstance(exc.orig, TypeError | ValueError | OverflowError)
    if isinstance(exc, DataError):
        return True
    state = _sqlstate(exc)
    if state is not None:
        return state.startswith("22")
    return isinstance(exc, ProgrammingError | InterfaceError) and str(exc.orig).startswith(_BIND_FAILURES)


# asyncpg quotes the value it could not encode ("invalid input for query argument $1: 'secret'
# (...)"), which hide_parameters does not reach: the value is cut from what we log (SEC-05).
_ARGUMENT_VALUE = re.compile(r"(invalid input for query argument \$\d+):.*")


def describe(exc: BaseException) -> str:
    """The first line of a database error, for a log line or StoreUnavailable's detail."""
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        text = str(exc.orig).strip().splitlines()[0]
    else:
        text = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
    return _ARGUMENT_VALUE.sub(r"\1: (value withheld)", text)[:200]
