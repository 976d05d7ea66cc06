"""A token bucket: the budget of fresh OCSP signatures (nonces, multi-certificate
requests, cache misses), so a flood of such requests cannot exhaust the signer."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate: float, burst: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        """rate tokens per second up to burst; rate <= 0 means no limit."""
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._now = monotonic
        self._last = monotonic()

    def take(self) -> bool:
        if self.rate <= 0:
            return True
        now = self._now()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
