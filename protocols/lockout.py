"""Wrong secrets are braked per client address: EST Basic passwords (EST-03), SCEP challenges (SCEP-03).

After ``limit`` failures within ``window`` seconds from one address, the protocol refuses that
address's next attempts without checking the secret (guessing costs the guesser time, not the
server scrypt work or a one-time challenge) until the oldest failure leaves the window: EST with
429 and Retry-After, SCEP with a CertRep FAILURE. The count lives in each server process: N
processes allow at most N x limit guesses per window. The secrets themselves are compared in
constant time elsewhere (ca/credentials.py, protocols/scep/challenge.py).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_ADDRESSES = 10_000  # addresses tracked at once; the least recently failed is forgotten first


class FailedAttempts:
    def __init__(self, limit: int, window: float, now: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._now = now
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        horizon = self._now() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures

    def wait(self, address: str) -> int:
        """Seconds before this address may try again (0: it may now)."""
        failures = self._recent(address)
        if failures is not None and len(failures) >= self.limit:
            return max(1, math.ceil(failures[0] + self.window - self._now()))
        return 0

    def failed(self, address: str) -> None:
        failures = self._failures.pop(address, None) or deque()
        failures.append(self._now())
        self._failures[address] = failures
        while len(self._failures) > MAX_ADDRESSES:
            self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)
