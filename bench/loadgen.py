"""A small HTTP/1.1 load generator for the OCSP benchmark: raw asyncio streams, pre-built
requests, keep-alive when the server allows it, reconnect when it does not.

An aiohttp client spends more CPU per request than the servers being measured, and the
generator shares the machine with them; raw streams keep it out of the way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    bodies_checked: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def post_request(path: str, body: bytes, host: str = "localhost") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/ocsp-request\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def get_request(path: str, host: str = "localhost") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, server keeps the connection)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, keep = None, lines[0].startswith("HTTP/1.1")
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection":
            keep = value.strip().lower() == "keep-alive" or (keep and value.strip().lower() != "close")
    if length is None:
        body = await reader.read()
        keep = False
    else:
        body = await reader.readexactly(length)
    return status, body, keep


async def run_load(
    host: str,
    port: int,
    requests: list[bytes],
    *,
    concurrency: int,
    seconds: float,
    warmup: float = 0.5,
    check: Callable[[int, bytes], bool] | None = None,
) -> LoadResult:
    """Send requests (cycled) from `concurrency` connections for `seconds` after a warm-up.
    `check(index, body)` validates the first answer of each connection and every 1000th."""
    result = LoadResult()
    counter = [0]
    started = time.monotonic()
    measure_from = started + warmup
    stop_at = measure_from + seconds

    async def worker() -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        sent = 0
        while True:
            now = time.monotonic()
            if now >= stop_at:
                break
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            assert reader is not None
            index = counter[0] % len(requests)
            counter[0] += 1
            begin = time.monotonic()
            try:
                writer.write(requests[index])
                status, body, keep = await _read_response(reader)
            except (ConnectionError, asyncio.IncompleteReadError):
                writer.close()
                writer = None
                if begin >= measure_from:
                    result.errors += 1
                continue
            end = time.monotonic()
            if begin >= measure_from and end <= stop_at:
                result.requests += 1
                result.latencies.append(end - begin)
                if status != 200:
                    result.errors += 1
            if check is not None and (sent == 0 or sent % 1000 == 0):
                result.bodies_checked += 1
                if not check(index, body):
                    result.errors += 1
            sent += 1
            if not keep:
                writer.close()
                writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = stop_at - measure_from
    return result
