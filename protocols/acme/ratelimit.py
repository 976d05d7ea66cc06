"""Rate limits per account, per registered domain and per client address (ACME-25).

The buckets live in the store, so every server process enforces the same limit
and a restart forgets nothing. Each bucket is a GCRA row (a token bucket kept as
one timestamp): a request's charges are one multi-row upsert that runs inside
the transaction which creates the order or account, so a limit costs no extra
round trip. If any bucket is empty the charges that did pass are refunded in
the same transaction, nothing is created, and the caller answers 429
`rateLimited` with Retry-After.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from publicsuffixlist import PublicSuffixList
from sqlalchemy import bindparam, case, delete, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ca.clock import Clock
from ca.enrollment import Identifier
from ca.state_store import Connection, StateDatabase, Tx, rate_limits
from protocols.acme.config import RateLimits
from protocols.acme.errors import AcmeProblem
from protocols.acme.row_sweep import RowSweep

log = logging.getLogger("tetra.acme.ratelimit")

SWEEP_EVERY = 1000  # requests charged between two sweeps of spent-out rows
FLOAT_SLACK = 1e-6  # seconds: limit x (window / limit) may round a hair above the window


@dataclass(frozen=True)
class Charge:
    """One request against one bucket: `limit` requests per `window` seconds."""

    key: str
    limit: int
    window: int
    what: str  # for the problem detail: "new orders for this account"

    @property
    def step(self) -> float:
        return self.window / self.limit


@dataclass(frozen=True)
class Refusal:
    """The bucket that was empty, and when it has room again."""

    charge: Charge
    retry_after: int

    def problem(self) -> AcmeProblem:
        c = self.charge
        return AcmeProblem(
            "rateLimited",
            f"too many {c.what}: limit {c.limit} per {c.window} s; retry after {self.retry_after} s",
            429,
            retry_after=self.retry_after,
        )


@dataclass(frozen=True)
class Charges:
    """What one request spends, at one moment; `spend` runs inside the caller's transaction."""

    items: tuple[Charge, ...]
    now: float

    def spend(self, conn: Connection) -> Refusal | None:
        if not self.items:
            return None
        rows = [
            {
                "key": c.key,
                "tat": self.now + c.step,
                "step_seconds": c.step,
                "window_seconds": float(c.window),
                "updated_at": self.now,
            }
            for c in self.items
        ]
        passed = set(conn.execute(_upsert(conn.dialect.name), rows).scalars())
        if len(passed) == len(self.items):
            return None
        if passed:
            conn.execute(_REFUND, {"keys": sorted(passed)})
        return self._refusal(conn, [c for c in self.items if c.key not in passed])

    def _refusal(self, conn: Connection, refused: Sequence[Charge]) -> Refusal:
        by_key = {c.key: c for c in refused}
        worst: Refusal | None = None
        for row in conn.execute(_BUCKETS, {"keys": sorted(by_key)}):
            # GCRA: the next request fits once max(tat, now) + step - window <= now.
            wait = max(row.tat, self.now) + row.step_seconds - row.window_seconds - self.now
            refusal = Refusal(by_key[row.key], max(1, math.ceil(wait)))
            if worst is None or refusal.retry_after > worst.retry_after:
                worst = refusal
        return worst or Refusal(refused[0], 1)


NO_CHARGES = Charges((), 0.0)


@cache
def _upsert(dialect: str) -> Any:
    """INSERT a fresh bucket, or take one step from an existing one unless that overflows it;
    RETURNING lists the keys that had room (built once per dialect)."""
    statement: postgresql.Insert | sqlite.Insert = (
        postgresql.insert(rate_limits) if dialect == "postgresql" else sqlite.insert(rate_limits)
    )
    new = statement.excluded
    start = case((rate_limits.c.tat > new.updated_at, rate_limits.c.tat), else_=new.updated_at)
    return statement.on_conflict_do_update(
        index_elements=[rate_limits.c.key],
        set_={
            "tat": start + new.step_seconds,
            "step_seconds": new.step_seconds,
            "window_seconds": new.window_seconds,
            "updated_at": new.updated_at,
        },
        where=start + new.step_seconds - new.updated_at <= new.window_seconds + literal(FLOAT_SLACK),
    ).returning(rate_limits.c.key)


_REFUND = (
    update(rate_limits)
    .where(rate_limits.c.key.in_(bindparam("keys", expanding=True)))
    .values(tat=rate_limits.c.tat - rate_limits.c.step_seconds)
)
_BUCKETS = select(rate_limits).where(rate_limits.c.key.in_(bindparam("keys", expanding=True)))


@cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def registered_domain(identifier: Identifier) -> str:
    """The name one level below its public suffix (www.example.co.uk -> example.co.uk), as
    certificate-per-domain limits count; an IP address counts on its own."""
    if identifier.type != "dns":
        return identifier.value
    name = identifier.value.lower().rstrip(".")
    return _psl().privatesuffix(name) or name


def address_key(remote: str) -> str:
    """IPv6 clients get a /64 (one host usually holds all of it), IPv4 clients an address."""
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote or "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class RateLimiter:
    """Builds each request's charges from [acme.rate_limits]; sweeps spent-out rows now and then."""

    def __init__(self, limits: RateLimits, clock: Clock, db: StateDatabase) -> None:
        self._limits = limits
        self._clock = clock
        self._db = db
        self._sweeper = RowSweep("rate-limit buckets", self._sweep, SWEEP_EVERY, log)

    def new_order(self, account_id: int, identifiers: Iterable[Identifier]) -> Charges:
        lim = self._limits
        per_account = "new orders for this account"
        items = [Charge(f"acme:account:{account_id}", lim.orders_per_account, lim.window_seconds, per_account)]
        for domain in dict.fromkeys(registered_domain(i) for i in identifiers):
            items.append(
                Charge(
                    f"acme:domain:{domain}",
                    lim.orders_per_identifier,
                    lim.identifier_window_seconds,
                    f"new orders for names under {domain}",
                )
            )
        return self._charges(items)

    def new_account(self, remote: str) -> Charges:
        lim = self._limits
        address = address_key(remote)
        charge = Charge(f"acme:ip:{address}", lim.accounts_per_ip, lim.window_seconds, f"new accounts from {address}")
        return self._charges([charge])

    def _charges(self, items: list[Charge]) -> Charges:
        # Sorted, so concurrent transactions lock bucket rows in one order (no deadlocks).
        live = tuple(sorted((c for c in items if c.limit > 0), key=lambda c: c.key))
        if not live:
            return NO_CHARGES
        self._sweeper.count()
        return Charges(live, self._clock.now().timestamp())

    async def _sweep(self) -> int:
        """Rows whose tat has passed are full buckets, the same as no row: drop them."""
        now = self._clock.now().timestamp()

        def w(tx: Tx) -> int:
            return int(tx.conn.execute(delete(rate_limits).where(rate_limits.c.tat < now)).rowcount)

        return await self._db.write(w)

    async def close(self) -> None:
        self._sweeper.cancel()
