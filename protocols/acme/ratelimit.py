"""Token buckets per account, per identifier and per client address (ACME-25).

Kept in process memory: with several processes each enforces its share, which
bounds the total by processes x limit; limits reset on restart.
"""

from __future__ import annotations

from collections import OrderedDict

from ca.clock import Clock
from protocols.acme.errors import AcmeProblem

MAX_BUCKETS = 100_000  # memory bound under floods of distinct keys (LOAD-05)


class RateLimiter:
    def __init__(self, clock: Clock, window_seconds: int) -> None:
        self._clock = clock
        self._window = float(window_seconds)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: str, limit: int, what: str) -> None:
        """Spend one token or raise rateLimited with the seconds until one is back."""
        if limit <= 0:
            return
        now = self._clock.now().timestamp()
        rate = limit / self._window
        tokens, at = self._buckets.pop(key, (float(limit), now))
        tokens = min(float(limit), tokens + (now - at) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            wait = max(1, int((1.0 - tokens) / rate) + 1)
            raise AcmeProblem(
                "rateLimited", f"too many {what}: limit {limit} per {int(self._window)} s", 429, retry_after=wait
            )
        self._buckets[key] = (tokens - 1.0, now)
        while len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)
