"""Wrong HTTP Basic passwords are braked per client address (EST-03).

After ``limit`` failures within ``window`` seconds from one address, Basic authentication from
it is refused with 429 and Retry-After until the oldest failure leaves the window, without the
password being checked (guessing costs the guesser time, not the server scrypt work). The count
lives in each server process: N processes allow at most N x limit guesses per window. The
password itself is compared in constant time by ca/credentials.py (an unknown user costs the same
scrypt work as a known one).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from protocols.est.errors import EstError

MAX_ADDRESSES = 10_000  # addresses tracked at once; the least recently failed is forgotten first


class FailedPasswords:
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

    def check(self, address: str) -> None:
        """Refuse (429) an address that used up its wrong passwords for now."""
        failures = self._recent(address)
        if failures is not None and len(failures) >= self.limit:
            wait = max(1, math.ceil(failures[0] + self.window - self._now()))
            raise EstError(
                429, f"too many wrong passwords from this address; retry after {wait} s", {"Retry-After": str(wait)}
            )

    def failed(self, address: str) -> None:
        failures = self._failures.pop(address, None) or deque()
        failures.append(self._now())
        self._failures[address] = failures
        while len(self._failures) > MAX_ADDRESSES:
            self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)
