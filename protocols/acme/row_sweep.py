"""A sweep of rows nobody needs any more, started in the background every so many requests.

The nonce pool (expired and surplus nonces, LOAD-04) and the rate limiter (spent-out buckets,
ACME-25) keep their tables bounded this way. One sweep runs at a time per process; a failed one
is logged and the next one tries again, since a table left a little larger for a while is
harmless and the request that happened to start the sweep must not fail for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable


class RowSweep:
    def __init__(self, what: str, remove: Callable[[], Awaitable[int]], every: int, log: logging.Logger) -> None:
        self._what = what  # the rows, for the log: "nonces"
        self._remove = remove  # one sweep; the number of rows it removed
        self._every = every
        self._log = log  # the owner's logger, so its messages stay under the owner's name
        self._counted = 0
        self.running: asyncio.Task[None] | None = None

    def count(self) -> None:
        """One more request: every ``every``-th starts a sweep, unless the last is still running."""
        self._counted += 1
        if self._counted % self._every == 0 and self.running is None:
            self.running = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            removed = await self._remove()
            if removed:
                self._log.debug("swept %d %s", removed, self._what)
        except Exception as exc:
            self._log.warning("sweeping %s failed: %s", self._what, exc)
        finally:
            self.running = None

    def cancel(self) -> None:
        if self.running is not None:
            self.running.cancel()


__all__ = ["RowSweep"]
