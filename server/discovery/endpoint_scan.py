"""Probe many endpoints at once, a bounded number at a time, reporting each as soon as it is done.

The endpoints are drawn lazily from the iterable, so a long list costs memory only for those in
flight; each probe has its own deadline, so a hostile endpoint delays nothing but its own report.
Closing the iterator early cancels the probes still running.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncGenerator, Iterable, Sequence

from cryptography import x509

from server.discovery.targets import Endpoint
from server.discovery.tls_probe import DEFAULT_MAX_CHAIN_BYTES, EndpointReport, probe_endpoint


async def scan_endpoints(
    endpoints: Iterable[Endpoint],
    *,
    concurrency: int,
    timeout: float,
    trust: Sequence[x509.Certificate],
    now: dt.datetime,
    max_chain_bytes: int = DEFAULT_MAX_CHAIN_BYTES,
) -> AsyncGenerator[EndpointReport, None]:
    """Yield one report per endpoint, in the order they finish, with at most ``concurrency`` probes open
    (an async generator: aclose() it, or leave an `async with aclosing(...)`, to stop early)."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    pending = iter(endpoints)
    running: set[asyncio.Task[EndpointReport]] = set()
    try:
        while True:
            for endpoint in pending:
                running.add(
                    asyncio.create_task(
                        probe_endpoint(endpoint, timeout=timeout, trust=trust, now=now, max_chain_bytes=max_chain_bytes)
                    )
                )
                if len(running) >= concurrency:
                    break
            if not running:
                return
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                yield task.result()
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
