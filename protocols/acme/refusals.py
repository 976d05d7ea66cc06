"""Per-source brake on refused requests (LOAD-05).

A client that keeps sending requests we refuse (forged signatures, replayed nonces, garbage)
costs us a JWS verification or a database round trip each time. After `per_minute` refusals
within a minute from one source (an IPv4 address or an IPv6 /64), that source's requests are
answered 429 rateLimited with Retry-After before any work is done, until its bucket drains.
Honest clients never come near the default: they are refused a few times at most.

Kept in memory, per process: it protects this process's CPU and is not a quota, so it needs
neither the store nor agreement between processes. The table is bounded (least recently
refused sources are forgotten first), so a flood from many addresses cannot grow it without end.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from ca.clock import Clock
from protocols.acme.ratelimit import address_key

WINDOW = 60.0  # seconds
MAX_SOURCES = 100_000


class RefusalLimiter:
    def __init__(self, per_minute: int, clock: Clock, max_sources: int = MAX_SOURCES) -> None:
        self._step = WINDOW / per_minute if per_minute > 0 else 0.0
        self._clock = clock
        self._max_sources = max_sources
        self._tat: OrderedDict[str, float] = OrderedDict()  # GCRA theoretical arrival time per source

    def retry_after(self, remote: str) -> int | None:
        """Seconds this source must wait before we look at its requests again; None: go ahead."""
        if not self._step:
            return None
        tat = self._tat.get(address_key(remote))
        if tat is None:
            return None
        excess = tat - self._now() - WINDOW
        return math.ceil(excess) if excess > 0 else None

    def refused(self, remote: str) -> bool:
        """Count one refusal against the source; True when it is this refusal that blocks it."""
        if not self._step:
            return False
        key, now = address_key(remote), self._now()
        tat = max(self._tat.pop(key, now), now) + self._step
        self._tat[key] = tat  # (re)inserted last: the table is ordered by most recent refusal
        while len(self._tat) > self._max_sources:
            self._tat.popitem(last=False)
        return tat - now > WINDOW

    def _now(self) -> float:
        return self._clock.now().timestamp()
